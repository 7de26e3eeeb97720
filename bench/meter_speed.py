"""Benchmark: meter 10,000 texts of about 100 words on the CPU.

    python bench/meter_speed.py                       # 10,000 synthetic texts (seeded)
    python bench/meter_speed.py --texts FILE.jsonl    # a set of your own (field "text", or .txt lines)
    python bench/meter_speed.py --n 2000 --no-embed   # quicker: the lexical and drift metrics only
    python bench/meter_speed.py --smoke               # seconds: 40 short texts (bench/common.py)

Times every set metric except the embeddings (issue 3 target: under 20 s together), then the
embedding pass with all-MiniLM-L6-v2, and sets that against its compute floor: the FLOPs of the
model over the tokens actually embedded (unpadded) divided by the best float32 matmul rate measured
on this machine in the same run, with the model's own matrix shapes. Also embeds a subset in
bfloat16 and reports its speed and its agreement (cosine) with float32.

Writes bench/out/meter_speed.json. Synthetic texts: sentences of 6-20 words drawn from wordfreq's
50,000 most frequent English words with Zipf-like weights, so every metric sees realistic
vocabulary statistics (including a few rare words).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script
import numpy as np


def synthetic_texts(count: int, words: int, seed: int) -> list[str]:
    from wordfreq import top_n_list

    vocab = top_n_list("en", 50_000)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        draws = rng.choice(len(vocab), size=words, p=weights)
        sentences, start = [], 0
        while start < words:
            length = int(rng.integers(6, 21))
            chunk = [vocab[i] for i in draws[start : start + length]]
            sentences.append(chunk[0].capitalize() + " " + " ".join(chunk[1:]) + ".")
            start += length
        texts.append(" ".join(sentences))
    return texts


def gemm_rate(shapes: list[tuple[int, int, int]], repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of torch matmuls over the given (m, k, n) shapes."""
    import torch
    import torch.nn.functional as F

    best = 0.0
    with torch.inference_mode():
        for m, k, n in shapes:
            a, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
            F.linear(a, w, b)
            for _ in range(repeats):
                t = time.perf_counter()
                F.linear(a, w, b)
                best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


def model_flops(model, lengths: list[int]) -> float:
    """Matmul FLOPs of a BERT encoder over unpadded texts: 2 x (weights in the layers' matrices)
    per token, plus attention scores and weighted sum, 2 x 2 x L^2 x hidden per text and layer."""
    cfg = model.config
    matrix_params = sum(p.numel() for p in model.encoder.parameters() if p.dim() == 2)
    tokens = sum(lengths)
    attention = sum(4 * L * L * cfg.hidden_size * cfg.num_hidden_layers for L in lengths)
    return 2 * matrix_params * tokens + attention


def timed(label: str, fn, timings: dict, cpu: dict | None = None):
    """Run fn, record its wall seconds (and, with `cpu`, this process's CPU seconds)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    timings[label] = round(time.perf_counter() - t, 3)
    if cpu is not None:
        cpu[label] = round(time.process_time() - c, 3)
    print(f"  {label:<28} {timings[label]:8.2f} s" + (f"  (CPU {cpu[label]:.1f} s)" if cpu is not None else ""),
          flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="synthetic texts")
    ap.add_argument("--words", type=int, default=100, help="words per synthetic text")
    ap.add_argument("--texts", type=Path, help="meter this file instead of synthetic texts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-embed", action="store_true", help="skip the embedding pass")
    ap.add_argument("--max-tokens", type=int, default=128, help="embedding truncation")
    ap.add_argument("--bf16-check", type=int, default=256, help="texts embedded in bf16 for the comparison (0: none)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    ap.add_argument("--gemm-rows", type=int, default=8192, help="rows of the matmuls timed for the compute floor")
    ap.add_argument("--out", type=Path, default=Path("bench/out/meter_speed.json"))
    args = common.parse(ap, argv, lambda d: {"n": 40, "words": 30, "bf16_check": 8, "threads": 1, "gemm_rows": 256,
                                             "out": d.dir / "meter_speed.json"})

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from reverie.meter.drift import degenerate_flags, rare_word_rate
    from reverie.meter.lexical import compression_ratio, distinct_n, self_bleu, self_repetition
    from reverie.meter.semantic import greedy_clusters, mean_cosine_distance, vendi_score
    from reverie.meter.tokens import tokenize_set

    if args.texts:
        from reverie.meter.inputs import read_texts

        texts = read_texts(args.texts)
    else:
        texts = synthetic_texts(args.n, args.words, args.seed)
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],  # other processes sharing the CPUs
        "texts": len(texts),
        "words": int(sum(len(t.split()) for t in texts)),
    }
    print(f"{len(texts)} texts, {report['words']} words; {report['machine']}")

    lex: dict = {}
    metrics: dict = {}
    print("set metrics without embeddings:")
    ts = timed("tokenise", lambda: tokenize_set(texts), lex)
    metrics.update(timed("distinct-1..4", lambda: {f"distinct_{n}": distinct_n(ts, n) for n in range(1, 5)}, lex))
    metrics["compression_ratio"] = timed("compression ratio", lambda: compression_ratio(texts), lex)
    metrics["self_bleu"] = timed("self-BLEU (64 refs)", lambda: self_bleu(ts, max_refs=64), lex)
    metrics["self_repetition"] = timed("self-repetition", lambda: self_repetition(ts), lex)
    metrics["rare_word_rate"] = timed("rare-word rate", lambda: rare_word_rate(ts), lex)
    metrics["degenerate_rate"] = timed("degenerate", lambda: float(degenerate_flags(ts).mean()), lex)
    report["lexical_seconds"] = lex
    report["lexical_total_s"] = round(sum(lex.values()), 2)
    print(f"  {'total':<28} {report['lexical_total_s']:8.2f} s")

    if not args.no_embed:
        from reverie.meter.embed import MiniLMEmbedder, minilm_path

        emb = MiniLMEmbedder(minilm_path(), max_tokens=args.max_tokens)
        cfg = emb.model.config
        inter = cfg.intermediate_size
        rows, square = args.gemm_rows, min(2048, args.gemm_rows)
        rate = gemm_rate([(rows, cfg.hidden_size, inter), (rows, inter, cfg.hidden_size),
                          (rows, cfg.hidden_size, cfg.hidden_size), (square, square, square)])
        print(f"embeddings (all-MiniLM-L6-v2, float32, oneDNN-fused: {emb.fused}, truncation {args.max_tokens}); "
              f"best fp32 matmul {rate:.0f} GFLOP/s")
        emb_t: dict = {}
        emb_cpu: dict = {}
        ids = timed("tokenise (WordPiece)", lambda: emb.tokenize(texts), emb_t, emb_cpu)
        X = timed("forward + pooling", lambda: emb.encode_ids(ids), emb_t, emb_cpu)
        lengths = [len(i) for i in ids]
        flops = model_flops(emb.model, lengths)
        floor = flops / (rate * 1e9)
        total = emb_t["tokenise (WordPiece)"] + emb_t["forward + pooling"]
        report["embedding"] = {
            "precision": "float32", "fused": emb.fused, "max_tokens": args.max_tokens, "tokens": sum(lengths),
            "tflop": round(flops / 1e12, 2), "gemm_gflops": round(rate, 1), "floor_s": round(floor, 1),
            "seconds": emb_t, "cpu_seconds": emb_cpu, "total_s": round(total, 1),
            "ratio_to_floor": round(total / floor, 2),
            "tokens_per_s": round(sum(lengths) / total),
        }
        print(f"  {sum(lengths)} tokens, {flops / 1e12:.1f} TFLOP: floor {floor:.0f} s at {rate:.0f} GFLOP/s; "
              f"measured {total:.0f} s = {total / floor:.2f}x the floor")

        sem: dict = {}
        metrics["vendi"] = timed("Vendi", lambda: vendi_score(X), sem)
        metrics["mean_cosine_distance"] = timed("mean cosine distance", lambda: mean_cosine_distance(X), sem)
        metrics["n_clusters"] = len(timed("greedy clusters (0.8)", lambda: greedy_clusters(X, 0.8), sem))
        report["semantic_seconds"] = sem

        k = min(args.bf16_check, len(texts))
        if k:
            sub = ids[:k]
            t = time.perf_counter()
            fp32 = emb.encode_ids(sub)
            fp32_s = time.perf_counter() - t
            emb_bf16 = MiniLMEmbedder(minilm_path(), max_tokens=args.max_tokens, precision="bfloat16")
            t = time.perf_counter()
            bf16 = emb_bf16.encode_ids(sub)
            bf16_s = time.perf_counter() - t
            cos = (fp32 * bf16).sum(axis=1)
            report["bf16_check"] = {"texts": k, "fp32_s": round(fp32_s, 2), "bf16_s": round(bf16_s, 2),
                                    "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean())}
            print(f"bf16 check on {k} texts: fp32 {fp32_s:.1f} s, bf16 {bf16_s:.1f} s, "
                  f"cosine min {cos.min():.5f} mean {cos.mean():.5f}")

    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at start {report['load_average_at_start']}, at end {report['load_average_at_end']}")
    report["metrics"] = metrics
    common.write_json(args.out, report, indent=2, echo=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
