"""A generation loop for Llama-family decoders on CPU: continuous batching over a static KV
cache, prompt-prefix reuse, exact top-p over a shortlist, one random stream per request.

    engine = Engine(model, eos_ids={2})           # model: a (PEFT-wrapped) LlamaForCausalLM
    engine.serve(pull, done, max_rows=128)        # pull(n) -> [Request]; done(request, Output)

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
- continuous batching (`serve`): a finished row hands its output back at once (a dream
  generator's next step can be asked right away), finished rows leave the batch, and waiting
  requests are prefilled and merged into the running batch, so no row waits for the slowest;
- each request samples from its own counter-based stream (`uniforms`), so its text depends on
  its prompt, settings and seed only, not on which rows shared its batch.

Layout: every row's tokens end at the batch's write slot, so each decode step writes one slot
for all rows; pads before a shorter context are masked (and may attend to themselves only, so
no softmax row is empty). Rows are kept sorted by where their context starts, and decode
attention reads each group of `ATTEND_ROWS` rows over its own window. Rotary positions are per
row, so reused, recomputed and merged tokens sit at the positions they had alone.

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

# Decoders with Llama's layout: pre-norm residual blocks, q/k/v/o projections (Qwen2's with biases,
# Qwen3's with per-head q/k norms), rotate-half rotary from `model.rotary_emb`, grouped K/V, a
# plain embedding and a final norm before lm_head. Mistral is Llama's layout plus a sliding window:
# supported when the window is off (`supports`). Gemma (scaled embeddings, (1 + w) norms) and Phi
# (partial rotary, parallel blocks) differ and use transformers' generate.
SUPPORTED = {"llama", "qwen2", "qwen3", "mistral"}
SHORTLIST = 256  # tokens considered by the top-k/top-p/min-p cut before the exact fallback
LEADER_SHARE = 0.5  # a prompt sharing at least this part of itself with a cached one reuses it
PREFILL_ROWS = 16  # rows prefilled together (sorted by need, so a group's window wastes little)
ADMIT_SHARE = 0.25  # waiting requests are merged in once they number this share of the live rows
MAX_WAIT = 8  # ... or once they have waited this many decode steps
ATTEND_ROWS = 16  # decode attention reads groups of (multiples of) this many rows over their own window
ATTEND_GAP = 64  # ... splitting where the group's window would shrink by at least this many slots


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
    def of(cls, params: Sequence, device=None) -> Sampling:
        """From reverie SamplingParams, one per row (tensors on `device`, the model's)."""
        f = lambda name, dtype=torch.float32: torch.tensor([getattr(p, name) or 0 for p in params], dtype=dtype,  # noqa: E731
                                                           device=device)
        return cls(temperature=f("temperature"), top_p=f("top_p"), top_k=f("top_k", torch.long), min_p=f("min_p"),
                   repetition_penalty=torch.tensor([p.repetition_penalty for p in params], dtype=torch.float32,
                                                   device=device),
                   max_new_tokens=[p.max_new_tokens for p in params])

    @classmethod
    def cat(cls, parts: Sequence[Sampling]) -> Sampling:
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in
                     ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")),
                   max_new_tokens=[n for p in parts for n in p.max_new_tokens])

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
        # Every tensor of a batch lives where the weights do: nothing crosses to the host inside a
        # step but the sampled tokens (one small copy per step, for EOS and stop tests).
        self.device = self.model.model.embed_tokens.weight.device
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

    def _attend(self, layer, h, cos, sin, cache, lo: int, hi: int, mask, base: int = 0, groups=None):
        """Self-attention of the tokens at slots [lo, hi) over slots [base, hi); writes their K/V.
        Decode may pass `groups` of rows [(r0, r1, group_base)]: each group reads only its own
        window (rows sorted by where their prompt starts: short contexts skip the long ones' pads)."""
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
        if mask.dtype != torch.bool:
            # Decode (one query, additive mask): grouped heads as a view, one matmul per step
            # (faster here than SDPA's kernel). Prefill windows pass a boolean mask to SDPA.
            g = self.n_heads // self.n_kv
            qg = q.reshape(B, self.n_kv, g, self.head_dim)
            outs = []
            for r0, r1, gb in groups or [(0, B, base)]:
                scores = torch.matmul(qg[r0:r1], K[r0:r1, :, gb:hi].transpose(-1, -2)) * attn.scaling
                scores = scores + mask[r0:r1, ..., gb - base :]  # (rows, 1, 1, hi - gb) additive
                outs.append(torch.matmul(scores.softmax(-1), V[r0:r1, :, gb:hi]))
            out = (outs[0] if len(outs) == 1 else torch.cat(outs)).reshape(B, self.n_heads, 1, self.head_dim)
        else:
            out = F.scaled_dot_product_attention(q, K[:, :, base:hi], V[:, :, base:hi], attn_mask=mask,
                                                 scale=attn.scaling, enable_gqa=self.n_kv != self.n_heads)
        return attn.o_proj(out.transpose(1, 2).reshape(B, S, self.n_heads * self.head_dim))

    def _forward(self, ids, positions, caches, lo: int, hi: int, mask, base: int = 0, groups=None) -> torch.Tensor:
        """Hidden states -> logits of the last slot; K/V of slots [lo, hi) written to `caches`;
        attention reads slots [base, hi) (the slots before `base` are pads of every row)."""
        x = self.model.model.embed_tokens(ids)
        cos, sin = self._rope(x, positions)
        for layer, cache in zip(self.layers, caches, strict=True):
            x = x + self._attend(layer, layer.input_layernorm(x), cos, sin, cache, lo, hi, mask, base, groups)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.lm_head(self.model.model.norm(x[:, -1])).float()

    def _new_caches(self, B: int, slots: int):
        shape = (B, self.n_kv, slots, self.head_dim)
        dtype = self.model.model.embed_tokens.weight.dtype
        return [(torch.zeros(shape, dtype=dtype, device=self.device), torch.zeros(shape, dtype=dtype, device=self.device))
                for _ in self.layers]

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
        prompts, reuse, keys = [prompts[i] for i in order], [reuse[i] for i in order], [found[i][1] for i in order]
        B = len(prompts)
        T = max(len(p) for p in prompts)
        caches, valid = self._reused_caches(prompts, reuse, keys, T, extra)
        logits = []
        slot = torch.arange(T, device=self.device)
        for r0 in range(0, B, PREFILL_ROWS):
            r1 = min(B, r0 + PREFILL_ROWS)
            S = len(prompts[r1 - 1]) - reuse[r1 - 1]  # rows are sorted by need: the last needs most
            logits.append(self._prefill_window(prompts[r0:r1], r0, S, T, caches, valid, slot))
        self.stats["reused_tokens"] += sum(reuse)
        return order, caches, valid, torch.cat(logits)

    def _reused_caches(self, prompts: list[np.ndarray], reuse: list[int], keys: list, T: int, extra: int):
        """New caches and valid-slot flags for `prompts` right-aligned at slot T, each row's first
        `reuse[r]` tokens copied from the prefix cache entry `keys[r]`."""
        B = len(prompts)
        caches = self._new_caches(B, T + extra)
        valid = torch.zeros(B, T + extra, dtype=torch.bool, device=self.device)
        for r, (p, n, key) in enumerate(zip(prompts, reuse, keys, strict=True)):
            start = T - len(p)
            valid[r, start:T] = True
            if n > 0:
                for (K, V), (k, v) in zip(caches, self.prefix.kv(key), strict=True):
                    K[r, :, start : start + n] = k[:, :n]
                    V[r, :, start : start + n] = v[:, :n]
        return caches, valid

    def _prefill_window(self, prompts: list[np.ndarray], r0: int, S: int, T: int, caches, valid, slot):
        """Logits of rows r0.. (`prompts`), computing their last S slots before T; K/V written to `caches`."""
        r1, lo = r0 + len(prompts), T - S
        ids, positions = self._window_tokens(prompts, S, T)
        q_slot = slot[lo:T]
        allowed = (slot[None, :] <= q_slot[:, None])[None] & valid[r0:r1, None, :T]
        allowed |= (slot[None, :] == q_slot[:, None])[None]  # pads attend to themselves
        group = [(K[r0:r1], V[r0:r1]) for K, V in caches]
        logits = self._forward(ids, positions, group, lo, T, allowed[:, None])
        self.stats["prefill_tokens"] += (r1 - r0) * S
        return logits

    def _window_tokens(self, prompts: list[np.ndarray], S: int, T: int):
        """Token ids and rotary positions of the window's S slots before T, one row per prompt."""
        lo = T - S
        ids = torch.zeros(len(prompts), S, dtype=torch.long, device="cpu")
        positions = torch.zeros(len(prompts), S, dtype=torch.long, device="cpu")
        for r, p in enumerate(prompts):
            first = lo - (T - len(p))  # index into p of the window's first slot (may be negative)
            take = p[max(first, 0) :]
            ids[r, S - len(take) :] = torch.from_numpy(take)
            positions[r] = torch.arange(first, first + S, device="cpu").clamp(min=0)
        return ids.to(self.device), positions.to(self.device)  # built on the host, moved once

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
    def serve(self, pull: Callable[[int], list[Request]], done: Callable[[Request, Output], None],
              max_rows: int) -> None:
        """Continuous batching: generate until `pull` has nothing more to give.

        `pull(n)` returns up to n requests to start; `done(request, output)` receives each as
        soon as it finishes, and may make more requests available to `pull` (a dream generator's
        next step). Finished rows leave the batch and waiting requests are prefilled and merged
        in. A merge copies the live rows' K/V once, so it waits until the newcomers number
        `ADMIT_SHARE` of the live rows (or `MAX_WAIT` steps have passed)."""
        batch: _Batch | None = None
        waiting: list[Request] = []
        waited = 0
        while True:
            live = batch.live if batch is not None else 0
            if max_rows - live - len(waiting) > 0:
                waiting += self._take(pull, done, max_rows - live - len(waiting))
            if live == 0 and not waiting:
                return
            if waiting and (live == 0 or len(waiting) >= ADMIT_SHARE * live or waited >= MAX_WAIT):
                batch, waiting, waited = self._admit(batch if live else None, waiting), [], 0
            else:
                waited += bool(waiting)
                if live <= 0.75 * len(batch.reqs):  # drop finished rows: later steps cost less
                    batch = batch.take([b for b in range(len(batch.reqs)) if batch.alive[b]])
            batch = self._step(batch, done)

    @staticmethod
    def _take(pull, done, n: int) -> list[Request]:
        while True:
            got = pull(n)
            if not got:
                return []
            for r in got:
                if r.params.max_new_tokens <= 0:
                    done(r, Output([], "length"))
            ready = [r for r in got if r.params.max_new_tokens > 0]
            if ready:
                return ready

    def _admit(self, batch: _Batch | None, reqs: list[Request]) -> _Batch:
        """Prefill `reqs` and merge them with the live rows of `batch` into a new batch.

        Layout: every row's tokens end at the batch's write slot, so the live rows' K/V move as
        one block and the new rows' prefill lands right-aligned beside them; finished rows are
        left out. Rows are ordered by where their context starts (longest first), so decode
        attention can read each group of rows over its own window."""
        reqs, arrays, (tc, tvalid, tlogits) = self._prefill_requests(reqs)
        at = self._layout(batch, reqs, arrays)
        seen = self._merged_seen(batch, at, self._prompt_seen(batch, reqs, arrays, tlogits.shape[-1]))
        keep, k, perm, p, dev = at.keep, at.k, at.perm, at.perm.tolist(), self.device
        reqs_all = [batch.reqs[b] for b in keep] + reqs if keep else reqs
        outs_all = ([batch.outs[b] for b in keep] if keep else []) + [[] for _ in reqs]
        s_new = Sampling.of([r.params for r in reqs], dev)
        return _Batch(
            caches=self._merged_caches(batch, at, tc), valid=self._merged_valid(batch, at, tvalid), slot=at.T,
            start=at.start[perm],
            positions=torch.cat([batch.positions[k] if keep else torch.zeros(0, dtype=torch.long, device=dev),
                                 at.lengths])[perm],
            s=(Sampling.cat([batch.s.take(k), s_new]) if keep else s_new).take(perm),
            seeds=np.concatenate([batch.seeds[keep] if keep else np.zeros(0, np.uint64),
                                  np.array([r.seed for r in reqs], dtype=np.uint64)])[p],
            reqs=[reqs_all[i] for i in p], outs=[outs_all[i] for i in p], alive=[True] * len(p),
            logits=torch.cat([batch.logits[k], tlogits])[perm] if keep else tlogits[perm], seen=seen)

    def _prefill_requests(self, reqs: list[Request]):
        """Prefill `reqs` (their leaders first) and cache their prompts. Returns the requests and
        their ids in the prefill's row order, and the prefill's (caches, valid, logits)."""
        arrays = [np.asarray(r.ids, dtype=np.int64) for r in reqs]
        self._warm(arrays)
        order, caches, valid, logits = self._prefill(arrays, 0)
        arrays = [arrays[i] for i in order]
        self._remember(arrays, caches, max(len(p) for p in arrays))
        return [reqs[i] for i in order], arrays, (caches, valid, logits)

    def _prompt_seen(self, batch: _Batch | None, reqs: list[Request], arrays: list[np.ndarray], V: int):
        """The new rows' prompt tokens as (rows, V) flags for the repetition penalty; None when no
        row of the merged batch has one."""
        tracked = batch is not None and batch.seen is not None
        if not (tracked or any(r.params.repetition_penalty != 1.0 for r in reqs)):
            return None
        seen = torch.zeros(len(reqs), V, dtype=torch.bool, device="cpu")
        for row, a in enumerate(arrays):
            seen[row, torch.from_numpy(a[a < V])] = True
        return seen.to(self.device)

    def _layout(self, batch: _Batch | None, reqs: list[Request], arrays: list[np.ndarray]) -> _Layout:
        """Where the merged batch puts the live rows of `batch` and the new rows (`reqs`, prefilled)."""
        dev = self.device
        keep = [b for b in range(len(batch.reqs)) if batch.alive[b]] if batch is not None else []
        k = torch.tensor(keep, dtype=torch.long, device=dev)
        slot = batch.slot if batch is not None else 0
        U = slot - int(batch.start[k].min()) if keep else 0  # slots the live rows use, ending at `slot`
        Tg = max(len(p) for p in arrays)
        T = max(U, Tg)
        need = max([r.params.max_new_tokens for r in reqs] + [batch.s.max_new_tokens[b] - len(batch.outs[b]) for b in keep])
        lengths = torch.tensor([len(p) for p in arrays], dtype=torch.long, device=dev)
        start = torch.cat([batch.start[k] - (slot - T) if keep else torch.zeros(0, dtype=torch.long, device=dev),
                           T - lengths])
        perm = torch.argsort(start, stable=True)  # longest context first
        dest = torch.empty_like(perm)
        dest[perm] = torch.arange(len(keep) + len(reqs), device=dev)
        return _Layout(keep, k, slot, U, Tg, T, need, lengths, start, perm, dest)

    def _merged_caches(self, batch: _Batch | None, at: _Layout, new_caches):
        """Each layer's K/V of the merged rows: the live rows' last U slots and the new rows' Tg
        slots, both ending at slot T, then room for `need` more."""
        n1, T, U, Tg, dev = len(at.keep), at.T, at.U, at.Tg, self.device
        caches = []
        for layer, (k2, v2) in enumerate(new_caches):
            shape = (len(at.dest), k2.shape[1], T + at.need, k2.shape[3])
            K2, V2 = torch.zeros(shape, dtype=k2.dtype, device=dev), torch.zeros(shape, dtype=k2.dtype, device=dev)
            if at.keep:
                K, Vc = batch.caches[layer]
                K2[at.dest[:n1], :, T - U : T] = K[at.k, :, at.slot - U : at.slot]
                V2[at.dest[:n1], :, T - U : T] = Vc[at.k, :, at.slot - U : at.slot]
            K2[at.dest[n1:], :, T - Tg : T] = k2
            V2[at.dest[n1:], :, T - Tg : T] = v2
            caches.append((K2, V2))
        return caches

    def _merged_valid(self, batch: _Batch | None, at: _Layout, new_valid: torch.Tensor) -> torch.Tensor:
        """Which slots of the merged rows hold real tokens (laid out as `_merged_caches`)."""
        n1, T, U, Tg = len(at.keep), at.T, at.U, at.Tg
        valid = torch.zeros(len(at.dest), T + at.need, dtype=torch.bool, device=self.device)
        if at.keep:
            valid[at.dest[:n1], T - U : T] = batch.valid[at.k, at.slot - U : at.slot]
        valid[at.dest[n1:], T - Tg : T] = new_valid[:, :Tg]
        return valid

    def _merged_seen(self, batch: _Batch | None, at: _Layout, seen_new: torch.Tensor | None) -> torch.Tensor | None:
        """The merged rows' seen tokens, or None when no row tracks them."""
        if seen_new is None:
            return None
        # rows without a repetition penalty tracked nothing: all-False rows change nothing for them
        before = (batch.seen[at.k] if at.keep and batch.seen is not None
                  else torch.zeros(len(at.keep), seen_new.shape[-1], dtype=torch.bool, device=self.device))
        return torch.cat([before, seen_new])[at.perm]

    def _step(self, batch: _Batch, done: Callable[[Request, Output], None]) -> _Batch | None:
        """Sample one token per row, hand finished rows to `done`, then compute the next logits
        (rows that just finished ride along until the next merge or compaction drops them)."""
        nxt = self._sample(batch)
        self._finish(batch, nxt.tolist(), done)
        if batch.live == 0:
            return None
        self._decode(batch, nxt)
        return batch

    def _sample(self, batch: _Batch) -> torch.Tensor:
        """One token per row, each drawn with the next number of the row's own stream."""
        counts = np.array([len(o) for o in batch.outs], dtype=np.uint64)
        u = uniforms(batch.seeds, counts)
        if self.device.type != "cpu":  # (MPS has no float64; the draw compares in the probabilities' float32)
            u = u.to(self.device, torch.float32 if self.device.type == "mps" else torch.float64)
        return sample(batch.logits, batch.s, u, batch.seen, self.stats)

    def _finish(self, batch: _Batch, tokens: list[int], done: Callable[[Request, Output], None]) -> None:
        """Append each live row's token; rows that end here (EOS, a stop, the length) go to `done`."""
        for b, token in enumerate(tokens):
            if not batch.alive[b]:
                continue
            r, out = batch.reqs[b], batch.outs[b]
            finish = None
            if token in self.eos_ids:
                finish = "stop"
            else:
                out.append(token)
                if r.stop is not None and r.stop(out):
                    finish = "stop"
                elif len(out) >= r.params.max_new_tokens:
                    finish = "length"
            if finish is not None:
                batch.alive[b] = False
                done(r, Output(out, finish))

    def _decode(self, batch: _Batch, nxt: torch.Tensor) -> None:
        """Write the sampled tokens' K/V at the batch's slot and compute every row's next logits."""
        B = len(batch.reqs)
        if batch.seen is not None:
            batch.seen[torch.arange(B, device=self.device), nxt] = True
        slot = batch.slot
        batch.valid[:, slot] = True
        starts = batch.start.tolist()  # ascending: rows are sorted by where their context starts
        base = starts[0]
        dtype = batch.caches[0][0].dtype  # the additive decode mask is in the model's dtype
        mask = torch.zeros(B, 1, 1, slot + 1 - base, dtype=dtype, device=self.device)
        mask.masked_fill_(~batch.valid[:, None, None, base : slot + 1], torch.finfo(dtype).min)
        batch.logits = self._forward(nxt[:, None], batch.positions[:, None], batch.caches, slot, slot + 1, mask,
                                     base, _attend_groups(starts))
        batch.positions += 1
        batch.slot += 1


def _attend_groups(starts: list[int]) -> list[tuple[int, int, int]]:
    """Decode attention's row groups [(r0, r1, first slot)] for rows whose contexts start at
    `starts` (ascending): a new group of `ATTEND_ROWS` rows where the window shrinks enough."""
    B = len(starts)
    groups, r0 = [], 0
    for r in range(ATTEND_ROWS, B, ATTEND_ROWS):
        if starts[r] - starts[r0] >= ATTEND_GAP:
            groups.append((r0, r, starts[r0]))
            r0 = r
    groups.append((r0, B, starts[r0]))
    return groups


@dataclass
class Request:
    """One prompt to generate for: token ids, its sampling settings (a reverie SamplingParams or
    anything with the same fields), its own random stream's seed, an optional stop test on the
    generated ids, and a tag for the caller."""

    ids: Sequence[int]
    params: object
    seed: int
    stop: Callable[[list[int]], bool] | None = None
    tag: object = None


@dataclass
class _Batch:
    """The rows being generated: their K/V (every row's tokens end at `slot`, the next write),
    which slots hold real tokens, where each row's prompt starts, positions, settings, streams."""

    caches: list[tuple[torch.Tensor, torch.Tensor]]
    valid: torch.Tensor  # (B, S) bool
    slot: int
    start: torch.Tensor  # (B,) first slot of each row's prompt
    positions: torch.Tensor  # (B,) next rotary position of each row
    s: Sampling
    seeds: np.ndarray  # (B,) uint64
    reqs: list[Request]
    outs: list[list[int]]
    alive: list[bool]
    logits: torch.Tensor  # (B, V) next-token logits
    seen: torch.Tensor | None  # (B, V) tokens seen (repetition penalty), or None

    @property
    def live(self) -> int:
        return sum(self.alive)

    def take(self, keep: list[int]) -> _Batch:
        k = torch.tensor(keep, device=self.valid.device)
        return _Batch(
            caches=[(K.index_select(0, k), V.index_select(0, k)) for K, V in self.caches],
            valid=self.valid[k], slot=self.slot, start=self.start[k], positions=self.positions[k],
            s=self.s.take(k), seeds=self.seeds[keep], reqs=[self.reqs[b] for b in keep],
            outs=[self.outs[b] for b in keep], alive=[self.alive[b] for b in keep], logits=self.logits[k],
            seen=self.seen[k] if self.seen is not None else None)


@dataclass
class _Layout:
    """Where a merge puts each row: the live rows' last U slots and the new rows' Tg slots both
    end at slot T. Rows are numbered live rows first, then new ones."""

    keep: list[int]  # the live rows of the old batch
    k: torch.Tensor  # the same, as an index tensor
    slot: int  # the old batch's write slot
    U: int  # slots the live rows use, ending at `slot`
    Tg: int  # slots the new rows use (their longest prompt)
    T: int  # the merged batch's write slot
    need: int  # slots left for generation
    lengths: torch.Tensor  # (new rows,) prompt lengths
    start: torch.Tensor  # (rows,) first slot of each row's context
    perm: torch.Tensor  # the merged order: longest context first
    dest: torch.Tensor  # row r goes to row dest[r] of the merged batch


# -- random streams: one per request, counter-based, so a text does not depend on its batch ------
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def row_seed(seed: int, i: int) -> int:
    """Row i's stream seed within a call seeded `seed`."""
    with np.errstate(over="ignore"):
        z = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) * _GOLDEN + np.uint64(i)
    return int(_mix(_mix(z))[0] >> np.uint64(1))


def uniforms(seeds: np.ndarray, counts: np.ndarray) -> torch.Tensor:
    """Uniform numbers in [0, 1): the `counts[i]`-th draw of stream `seeds[i]`."""
    with np.errstate(over="ignore"):
        z = _mix(_mix(seeds.astype(np.uint64)) + (counts.astype(np.uint64) + np.uint64(1)) * _GOLDEN)
    return torch.from_numpy((z >> np.uint64(11)).astype(np.float64) * 2.0**-53)


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
    in_k = torch.arange(vals.shape[-1], device=vals.device)[None, :] < top_k[:, None]
    mass = torch.where(in_k, vals, torch.zeros_like(vals)).sum(-1, keepdim=True)
    mass = torch.where(top_k[:, None] < V, mass, torch.ones_like(mass))  # top-k on: renormalise over it
    before = (vals.cumsum(-1) - vals) / mass  # share of the more likely tokens
    keep = in_k & ((before < top_p[:, None]) | (top_p[:, None] >= 1.0))  # top-p: the smallest set reaching p
    keep &= vals >= min_p[:, None] * vals[:, :1]  # (the most likely token always stays)
    weights = torch.where(keep, vals, torch.zeros_like(vals))
    return idx.gather(1, _draw(weights, u)[:, None]).squeeze(1)
