"""A generation loop for Llama-family decoders on CPU: static KV cache, prompt-prefix reuse,
exact top-p over a shortlist, finished rows dropped.

    engine = Engine(model, eos_ids={2})           # model: a (PEFT-wrapped) LlamaForCausalLM
    outs = engine.generate([[1, 2, 3], ...], params, generator=torch.Generator().manual_seed(0))

Why not `model.generate`: measured on the 2-core CPU with SmolLM2-135M at batch 64, a decode step
of transformers' generate spent 58% of its time in `torch.cat` growing the dynamic KV cache, and
its top-p warper sorts the whole 49k vocabulary for every row (120 ms a step). Dream prompts
also repeat themselves: every prompt about a chunk starts with the same system prompt and chunk,
so prefilling them again is most of the work when answers are short.

What it does instead, all with the model's own modules (so LoRA layers injected by PEFT apply):
- one preallocated KV cache per batch; decode writes one slot per step, attention reads a view;
- a `PrefixCache` of recent prompts' keys and values: the KV of a causal model's first n tokens
  depends only on those tokens, so a prompt sharing n tokens with a cached one copies them and
  prefills only the rest. Prompts in a batch that share most of their tokens are prefilled once
  ("leaders") before the others reuse them;
- sampling: repetition penalty, temperature, then top-k / top-p / min-p cut on the 256 most likely
  tokens; a row whose cut is not decided inside that shortlist falls back to a full sort, so the
  result is exactly top-p (not an approximation);
- rows that finished are dropped from the batch once a quarter of it is done.

Layout: row i's prompt is right-aligned to slot T (the longest prompt), so every row's next token
is written at the same slot; pads before a short prompt are masked (and may attend to themselves
only, so no softmax row is empty). Rotary positions are per row, so reused and recomputed tokens
sit at the positions they had alone.

The prefix cache assumes the weights do not change under it: reverie builds a backend per model
state (the quiz, the probe and each night load their own), and `engine.prefix.clear()` is there for
code that trains or swaps adapters in place.

Supported: model types in `SUPPORTED` without sliding windows; `supports(model)` says. Anything
else goes through transformers' generate (reverie.models.backend).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SUPPORTED = {"llama", "qwen2", "qwen3"}
SHORTLIST = 256  # tokens considered by the top-k/top-p/min-p cut before the exact fallback
LEADER_SHARE = 0.5  # a prompt sharing at least this part of itself with a cached one reuses it
PREFILL_ROWS = 16  # rows prefilled together (sorted by need, so a group's window wastes little)


def base_model(model):
    """The transformers model under a PEFT wrapper (LoRA layers stay injected in its modules)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def supports(model) -> bool:
    m = base_model(model)
    cfg = getattr(m, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED:
        return False
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return False
    return hasattr(m, "model") and hasattr(m.model, "rotary_emb")


@dataclass
class Output:
    ids: list[int]  # generated tokens, EOS excluded
    finish_reason: str  # 'stop' or 'length'


def _shared(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


class PrefixCache:
    """Keys and values of recently prefilled prompts, least recently used evicted first."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.entries: OrderedDict[int, tuple[np.ndarray, list[tuple[torch.Tensor, torch.Tensor]]]] = OrderedDict()
        self.tokens = 0
        self._next = 0

    def lookup(self, ids: np.ndarray) -> tuple[int, int | None]:
        """(shared length, entry key) of the entry sharing the longest prefix with `ids`."""
        best, key = 0, None
        for k, (stored, _) in self.entries.items():
            shared = _shared(stored, ids)
            if shared > best:
                best, key = shared, k
        if key is not None:
            self.entries.move_to_end(key)
        return best, key

    def kv(self, key: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.entries[key][1]

    def add(self, ids: np.ndarray, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if len(ids) > self.max_tokens:
            return
        self.entries[self._next] = (ids, kv)
        self._next += 1
        self.tokens += len(ids)
        while self.tokens > self.max_tokens:
            _, (old, _) = self.entries.popitem(last=False)
            self.tokens -= len(old)

    def clear(self) -> None:
        self.entries.clear()
        self.tokens = 0


@dataclass
class Sampling:
    """Per-row sampling settings of one batch (rows may differ: a dream step mixes generators)."""

    temperature: torch.Tensor  # (B,) float; 0 = greedy
    top_p: torch.Tensor  # (B,) float; 1 = off
    top_k: torch.Tensor  # (B,) long; 0 = off
    min_p: torch.Tensor  # (B,) float; 0 = off
    repetition_penalty: torch.Tensor  # (B,) float; 1 = off
    max_new_tokens: list[int]

    @classmethod
    def of(cls, params: Sequence) -> Sampling:
        """From reverie SamplingParams, one per row."""
        f = lambda name, dtype=torch.float32: torch.tensor([getattr(p, name) or 0 for p in params], dtype=dtype)  # noqa: E731
        return cls(temperature=f("temperature"), top_p=f("top_p"), top_k=f("top_k", torch.long), min_p=f("min_p"),
                   repetition_penalty=torch.tensor([p.repetition_penalty for p in params], dtype=torch.float32),
                   max_new_tokens=[p.max_new_tokens for p in params])

    def take(self, keep: torch.Tensor) -> Sampling:
        """The rows `keep` (indices into the current rows)."""
        return Sampling(self.temperature[keep], self.top_p[keep], self.top_k[keep], self.min_p[keep],
                        self.repetition_penalty[keep], [self.max_new_tokens[int(k)] for k in keep])


class Engine:
    def __init__(self, model, eos_ids: set[int], prefix_cache_tokens: int = 16384):
        self.model = base_model(model)
        cfg = self.model.config
        self.layers = self.model.model.layers
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eos_ids = set(eos_ids)
        self.prefix = PrefixCache(prefix_cache_tokens)
        self.stats = {"prefill_tokens": 0, "reused_tokens": 0, "fallback_rows": 0, "sampled_rows": 0}

    # -- model pieces ---------------------------------------------------------------------------
    def _rope(self, x: torch.Tensor, positions: torch.Tensor):
        cos, sin = self.model.model.rotary_emb(x, positions)
        return cos.unsqueeze(1), sin.unsqueeze(1)

    @staticmethod
    def _rotate(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _attend(self, layer, h, cos, sin, cache, lo: int, hi: int, mask, base: int = 0):
        """Self-attention of the tokens at slots [lo, hi) over slots [base, hi); writes their K/V."""
        attn = layer.self_attn
        B, S, _ = h.shape
        q = attn.q_proj(h).view(B, S, self.n_heads, self.head_dim)
        k = attn.k_proj(h).view(B, S, self.n_kv, self.head_dim)
        v = attn.v_proj(h).view(B, S, self.n_kv, self.head_dim).transpose(1, 2)
        if hasattr(attn, "q_norm"):  # qwen3 normalises q and k per head before rotary
            q, k = attn.q_norm(q), attn.k_norm(k)
        q = self._rotate(q.transpose(1, 2), cos, sin)
        k = self._rotate(k.transpose(1, 2), cos, sin)
        K, V = cache
        K[:, :, lo:hi] = k
        V[:, :, lo:hi] = v
        keys, values = K[:, :, base:hi], V[:, :, base:hi]
        if mask.dtype != torch.bool:
            # Decode (one query, additive mask): grouped heads as a view, one matmul per step
            # (faster here than SDPA's kernel). Prefill windows pass a boolean mask to SDPA.
            g = self.n_heads // self.n_kv
            qg = q.reshape(B, self.n_kv, g, self.head_dim)
            scores = torch.matmul(qg, keys.transpose(-1, -2)) * attn.scaling
            scores = scores + mask  # (B, 1, 1, hi) additive
            out = torch.matmul(scores.softmax(-1), values).reshape(B, self.n_heads, 1, self.head_dim)
        else:
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=attn.scaling,
                                                 enable_gqa=self.n_kv != self.n_heads)
        return attn.o_proj(out.transpose(1, 2).reshape(B, S, self.n_heads * self.head_dim))

    def _forward(self, ids, positions, caches, lo: int, hi: int, mask, base: int = 0) -> torch.Tensor:
        """Hidden states -> logits of the last slot; K/V of slots [lo, hi) written to `caches`;
        attention reads slots [base, hi) (the slots before `base` are pads of every row)."""
        x = self.model.model.embed_tokens(ids)
        cos, sin = self._rope(x, positions)
        for layer, cache in zip(self.layers, caches, strict=True):
            x = x + self._attend(layer, layer.input_layernorm(x), cos, sin, cache, lo, hi, mask, base)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.lm_head(self.model.model.norm(x[:, -1])).float()

    def _new_caches(self, B: int, slots: int):
        shape = (B, self.n_kv, slots, self.head_dim)
        dtype = self.model.model.embed_tokens.weight.dtype
        return [(torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)) for _ in self.layers]

    # -- prefill --------------------------------------------------------------------------------
    def _prefill(self, prompts: list[np.ndarray], extra: int):
        """Caches for `prompts` right-aligned at slot T, plus room for `extra` tokens.

        Rows are reordered by how many tokens they still need after prefix reuse, and computed in
        groups of `PREFILL_ROWS`, each over its own window: a group's window is as long as its
        longest need, so little is recomputed. Returns (order, caches, valid, logits) with row r
        of the results holding prompts[order[r]]."""
        found = [self.prefix.lookup(p) for p in prompts]
        # The last token is always computed: its logits are needed.
        reuse = [min(n, len(p) - 1) if key is not None else 0 for p, (n, key) in zip(prompts, found, strict=True)]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) - reuse[i])
        prompts = [prompts[i] for i in order]
        B = len(prompts)
        T = max(len(p) for p in prompts)
        caches = self._new_caches(B, T + extra)
        valid = torch.zeros(B, T + extra, dtype=torch.bool)
        for r, i in enumerate(order):
            p, n, start = prompts[r], reuse[i], T - len(prompts[r])
            valid[r, start:T] = True
            if n > 0:
                for (K, V), (k, v) in zip(caches, self.prefix.kv(found[i][1]), strict=True):
                    K[r, :, start : start + n] = k[:, :n]
                    V[r, :, start : start + n] = v[:, :n]
        logits = []
        slot = torch.arange(T)
        for r0 in range(0, B, PREFILL_ROWS):
            r1 = min(B, r0 + PREFILL_ROWS)
            S = len(prompts[r1 - 1]) - reuse[order[r1 - 1]]  # rows are sorted by need: the last needs most
            lo = T - S
            ids = torch.zeros(r1 - r0, S, dtype=torch.long)
            positions = torch.zeros(r1 - r0, S, dtype=torch.long)
            for r in range(r0, r1):
                p = prompts[r]
                first = lo - (T - len(p))  # index into p of the window's first slot (may be negative)
                take = p[max(first, 0) :]
                ids[r - r0, S - len(take) :] = torch.from_numpy(take)
                positions[r - r0] = torch.arange(first, first + S).clamp(min=0)
            q_slot = slot[lo:T]
            allowed = (slot[None, :] <= q_slot[:, None])[None] & valid[r0:r1, None, :T]
            allowed |= (slot[None, :] == q_slot[:, None])[None]  # pads attend to themselves
            group = [(K[r0:r1], V[r0:r1]) for K, V in caches]
            logits.append(self._forward(ids, positions, group, lo, T, allowed[:, None]))
            self.stats["prefill_tokens"] += (r1 - r0) * S
        self.stats["reused_tokens"] += sum(reuse)
        return order, caches, valid, torch.cat(logits)

    def _remember(self, prompts: list[np.ndarray], caches, T: int) -> None:
        """Cache the prompts that no entry covers well yet (the others would only crowd it)."""
        for i, p in enumerate(prompts):
            if self.prefix.lookup(p)[0] >= LEADER_SHARE * len(p):
                continue
            start = T - len(p)
            self.prefix.add(p, [(K[i, :, start:T].clone(), V[i, :, start:T].clone()) for K, V in caches])

    def _warm(self, prompts: list[np.ndarray]) -> None:
        """Prefill once, and cache, the prompts no cached entry covers well (the 'leaders')."""
        leaders: list[np.ndarray] = []
        for p in prompts:
            n, _ = self.prefix.lookup(p)
            shared = max([n] + [_shared(p, q) for q in leaders])
            if shared < LEADER_SHARE * len(p):
                leaders.append(p)
        if not leaders or len(leaders) == len(prompts):
            return  # nothing gained: every prompt is its own leader, or all are already covered
        order, caches, _, _ = self._prefill(leaders, 0)
        self._remember([leaders[i] for i in order], caches, max(len(p) for p in leaders))

    # -- generation -----------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Sequence[int]], s: Sampling, generator: torch.Generator,
                 stop_check: Callable[[int, list[int]], bool] | None = None) -> list[Output]:
        """Generate for one batch (row i with row i of `s`). `stop_check(i, ids)` may end row i
        early (stop strings)."""
        arrays = [np.asarray(p, dtype=np.int64) for p in prompts]
        self._warm(arrays)
        longest = max(s.max_new_tokens)
        order, caches, valid, logits = self._prefill(arrays, longest)
        T = max(len(p) for p in arrays)
        self._remember([arrays[i] for i in order], caches, T)
        B, V = len(arrays), logits.shape[-1]
        s = s.take(torch.tensor(order))
        seen = None
        if bool((s.repetition_penalty != 1.0).any()):
            seen = torch.zeros(B, V, dtype=torch.bool)
            for r, i in enumerate(order):
                seen[r, torch.from_numpy(arrays[i][arrays[i] < V])] = True
        rows = list(order)  # original row of each live batch row
        out: list[list[int]] = [[] for _ in range(B)]
        finish = ["length"] * B
        done = [False] * B
        positions = torch.tensor([len(arrays[i]) for i in order], dtype=torch.long)
        base = T - int(positions.max())  # slots before this are pads of every live row
        neg = torch.finfo(logits.dtype).min
        for step in range(longest):
            # One uniform per original row and step: the draws do not depend on how rows were
            # ordered or dropped (which varies with what the prefix cache holds).
            u = torch.rand(B, generator=generator)[torch.tensor(rows)]
            nxt = sample(logits, s, u, seen, self.stats)
            live = []
            for b, token in enumerate(nxt.tolist()):
                i = rows[b]
                if done[i]:
                    continue
                if token in self.eos_ids:
                    finish[i], done[i] = "stop", True
                    continue
                out[i].append(token)
                if stop_check is not None and stop_check(i, out[i]):
                    finish[i], done[i] = "stop", True
                elif len(out[i]) >= s.max_new_tokens[b]:
                    done[i] = True  # finish stays 'length'
                else:
                    live.append(b)
            if not live:
                break
            if len(live) <= 0.75 * len(rows):  # drop finished rows: later steps cost less
                keep = torch.tensor(live)
                caches = [(K.index_select(0, keep), V.index_select(0, keep)) for K, V in caches]
                valid, positions, nxt, s = valid[keep], positions[keep], nxt[keep], s.take(keep)
                seen = seen[keep] if seen is not None else None
                rows = [rows[b] for b in live]
                base = T - max(len(arrays[i]) for i in rows)  # the longest prompts may be gone
            if seen is not None:
                seen[torch.arange(len(rows)), nxt] = True
            slot = T + step
            valid[:, slot] = True
            mask = torch.zeros(len(rows), 1, 1, slot + 1 - base, dtype=logits.dtype)
            mask.masked_fill_(~valid[:, None, None, base : slot + 1], neg)
            logits = self._forward(nxt[:, None], positions[:, None], caches, slot, slot + 1, mask, base)
            positions = positions + 1
        return [Output(ids, f) for ids, f in zip(out, finish, strict=True)]


def sample(logits: torch.Tensor, s: Sampling, u: torch.Tensor, seen=None, stats=None) -> torch.Tensor:
    """One token per row: repetition penalty, temperature, then the top-k / top-p / min-p cut
    (transformers' order and semantics), each with the row's own settings. The cut is made on
    the 256 most likely tokens; rows whose cut is not decided there are retried on 4096, then on
    the whole vocabulary, so the result is exact while a full sort (120 ms for 64 rows here)
    stays rare. `u`: one uniform number in [0, 1) per row, the row's draw."""
    if seen is not None:
        p = s.repetition_penalty[:, None]
        penalised = torch.where(logits < 0, logits * p, logits / p)
        logits = torch.where(seen, penalised, logits)
    greedy = s.temperature <= 0
    if bool(greedy.all()):
        return logits.argmax(-1)
    probs = torch.softmax(logits / torch.where(greedy, 1.0, s.temperature)[:, None], dim=-1)
    n, V = probs.shape
    top_k = torch.where((s.top_k > 0) & (s.top_k < V), s.top_k, V)
    result = logits.argmax(-1)
    plain = ~greedy & (top_k == V) & (s.top_p >= 1.0) & (s.min_p <= 0)  # no cut: the whole distribution
    if bool(plain.any()):
        result[plain] = _draw(probs[plain], u[plain])
    rows = (~greedy & ~plain).nonzero().squeeze(1)
    for width in (SHORTLIST, 4096, V):
        if not len(rows):
            break
        k = min(width, int(top_k[rows].max()))
        vals, idx = probs[rows].topk(k, dim=-1)
        tk, tp, mp = top_k[rows], s.top_p[rows], s.min_p[rows]
        # With top-k on, top-p is relative to the top-k mass (transformers renormalises in between):
        # such a row is decided once its whole top-k set is in hand.
        no_k = tk >= V
        decided = (tk <= k) | (no_k & (tp < 1.0) & (vals.sum(-1) >= tp))
        decided |= no_k & (mp > 0) & (vals[:, -1] < mp * vals[:, 0])
        if stats is not None:
            stats["sampled_rows" if width == SHORTLIST else "fallback_rows"] += int(decided.sum())
        d = decided.nonzero().squeeze(1)
        result[rows[d]] = _cut_and_draw(vals[d], idx[d], tk[d], tp[d], mp[d], u[rows[d]], V)
        rows = rows[~decided]
    return result


def _draw(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One index per row with probability proportional to `weights`, by inverse CDF at the row's
    uniform `u` (torch.multinomial would draw an exponential per vocabulary entry)."""
    cdf = weights.cumsum(-1)
    return torch.searchsorted(cdf, u[:, None].to(cdf.dtype) * cdf[:, -1:]).clamp_(max=weights.shape[-1] - 1).squeeze(1)


def _cut_and_draw(vals, idx, top_k, top_p, min_p, u, V: int) -> torch.Tensor:
    """Sorted (descending) probabilities, their token ids and per-row cut settings -> one drawn
    token per row."""
    if not len(vals):
        return idx[:, 0]
    in_k = torch.arange(vals.shape[-1])[None, :] < top_k[:, None]
    mass = torch.where(in_k, vals, torch.zeros_like(vals)).sum(-1, keepdim=True)
    mass = torch.where(top_k[:, None] < V, mass, torch.ones_like(mass))  # top-k on: renormalise over it
    before = (vals.cumsum(-1) - vals) / mass  # share of the more likely tokens
    keep = in_k & ((before < top_p[:, None]) | (top_p[:, None] >= 1.0))  # top-p: the smallest set reaching p
    keep &= vals >= min_p[:, None] * vals[:, :1]  # (the most likely token always stays)
    weights = torch.where(keep, vals, torch.zeros_like(vals))
    return idx.gather(1, _draw(weights, u)[:, None]).squeeze(1)
