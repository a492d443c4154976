"""`msa train reader`: supervised fine-tuning of the backbone as a reader, as low-rank adapters.

Examples (reader_data) are laid out exactly as `ask` lays out its prompt: the chat template's
system turn and user header (positions from 0), then, after a gap where the memory slots sit, the
injected evidence blocks, the question and the assistant header. The loss is on the answer tokens
only (the evidence span or the abstention phrase, then the end of turn).

Two paths are trained: the text path (evidence as raw text, batched and padded) and, for a share
of steps, the memory path as MSA reads (batch 1): the evidence documents are encoded as memory
(`MSAModel.encode`, no gradient) and their pooled K̄/V̄ are prepended in every router layer while
their raw text is also injected, so sparse generation is trained, not only the text path.
Validation runs base (adapters off) against tuned on held-out synthetic sets, both paths.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from msa_agent.model.lora import LoRALinear, add_lora, backbone_bytes, load_lora, backbone_id, merged, save_adapter
from msa_agent.model.model import KVCache, MSAModel, rope_cos_sin
from msa_agent.model.tokenizer import Tokenizer
from msa_agent.reading import ABSTAIN, SYSTEM, is_abstention, locate_quote, prompt_pieces

from .reader_data import Example, Mix, make_examples

ADAPTER_NAME = "reader-smollm2-135m"


@dataclass
class ReaderTrainConfig:
    examples: int = 60000
    val_per_domain: int = 48
    val_unanswerable: float = 0.25  # share of each validation domain's questions that are unanswerable
    seed: int = 0
    rank: int = 16
    alpha: float = 32.0
    lr: float = 5e-4
    warmup: int = 30
    batch_tokens: int = 32768  # padded tokens per text-path step
    max_len: int = 1536  # longer examples are dropped
    time_budget_s: float = 240.0  # training stops here (the schedule is fitted to it, and re-fitted after warm-up)
    max_steps: int | None = None
    mem_every: int = 4  # a memory-path micro-batch every this many steps (0: never)
    mem_batch: int = 8  # examples per memory-path micro-batch (one batched forward)
    mem_weight: float = 1.0
    max_code_files: int = 16000
    max_new_tokens: int = 24
    log_every: int = 20
    mix: Mix = field(default_factory=Mix)
    init_adapter: Path | None = None  # start from this adapter (same rank and alpha) instead of zero
    real_corpus: Path | None = None  # real-text corpus for Mix.real (`msa train real-corpus`); None: this machine's


# ---- tokenised examples -----------------------------------------------------------------------


@dataclass
class Item:
    prefix: list[int]
    prompt: list[int]
    answer: list[int]  # answer tokens and the end of turn
    ex: Example

    def __len__(self) -> int:
        return len(self.prefix) + len(self.prompt) + len(self.answer)


def tokenize(tok: Tokenizer, examples: list[Example], max_len: int) -> list[Item]:
    """Token ids per example, with `ask`'s layout (each prompt piece tokenised on its own)."""
    prefix = tok.chat_prefix(SYSTEM)
    tail = tok.chat_prompt("")
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    for ex in examples:
        pieces = [t for t, _ in prompt_pieces(ex.blocks(), ex.question)] + [ex.answer]
        spans.append((len(texts), len(texts) + len(pieces)))
        texts += pieces
    ids = tok.encode_batch(texts)
    out = []
    for ex, (a, b) in zip(examples, spans):
        prompt = [t for piece in ids[a:b - 1] for t in piece] + tail
        item = Item(prefix, prompt, ids[b - 1] + [tok.im_end], ex)
        if len(item) <= max_len:
            out.append(item)
    return out


@dataclass
class TextBatch:
    """A text-path batch on the host: right-padded ids (B, T), positions (B, T), next-token
    targets (B, T) (-100 off the answer), and the flat indices (into B·T) of the positions that
    predict an answer token with those tokens (so the loss needs no boolean mask: no device sync)."""

    ids: torch.Tensor
    pos: torch.Tensor
    tgt: torch.Tensor
    idx: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> TextBatch:
        if device.type != "cuda":
            return TextBatch(*(t.to(device) for t in (self.ids, self.pos, self.tgt, self.idx, self.labels)))
        return TextBatch(*(t.pin_memory().to(device, non_blocking=True)
                           for t in (self.ids, self.pos, self.tgt, self.idx, self.labels)))


def prepare_text(items: list[Item], gap: int) -> TextBatch:
    """The host tensors of a text-path batch (see `text_batch`)."""
    T = max(len(it) for it in items)
    B = len(items)
    ids = np.zeros((B, T), dtype=np.int64)
    tgt = np.full((B, T), -100, dtype=np.int64)
    ar = np.arange(T + gap, dtype=np.int64)
    pos = np.empty((B, T), dtype=np.int64)
    idx: list[np.ndarray] = []
    for b, it in enumerate(items):
        row = it.prefix + it.prompt + it.answer
        n, p = len(row), len(it.prefix)
        ids[b, :n] = row
        pos[b, :p] = ar[:p]
        pos[b, p:] = ar[p + gap : T + gap]
        start = n - len(it.answer)
        # The token before each answer token predicts it.
        tgt[b, start - 1 : n - 1] = it.answer
        idx.append(np.arange(b * T + start - 1, b * T + n - 1, dtype=np.int64))
    flat = np.concatenate(idx)
    return TextBatch(torch.from_numpy(ids), torch.from_numpy(pos), torch.from_numpy(tgt), torch.from_numpy(flat),
                     torch.from_numpy(tgt.reshape(-1)[flat]))


def text_batch(items: list[Item], gap: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T), positions (B, T) with a `gap` after the template prefix (where the
    memory slots sit at inference), and next-token targets (B, T) that are -100 off the answer."""
    tb = prepare_text(items, gap).to(device)
    return tb.ids, tb.pos, tb.tgt


def answer_loss(model: MSAModel, h: torch.Tensor, tgt: torch.Tensor, idx: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the answer tokens only; logits are computed only where a target is. With
    `idx`/`labels` (flat positions into B·T and their targets, from `prepare_text`) the answer
    positions are gathered without a boolean mask (no host sync); the same rows, in the same order."""
    if idx is None:
        sel = tgt != -100  # (B, T)
        logits = model.logits(h[sel][None])[0]  # (n, V)
        return F.cross_entropy(logits.float(), tgt[sel])
    hs = h.reshape(-1, h.shape[-1]).index_select(0, idx)  # (n, C)
    logits = model.logits(hs[None])[0]  # (n, V)
    return F.cross_entropy(logits.float(), labels)


def batches(items: list[Item], batch_tokens: int, rng: random.Random) -> list[list[Item]]:
    """Length-sorted batches of about `batch_tokens` padded tokens, in random order."""
    order = sorted(items, key=len)
    out, cur = [], []
    for it in order:
        if cur and len(it) * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(it)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


# ---- the memory path ----------------------------------------------------------------------------


class FixedMemory:
    """A MemorySelector that returns the given documents' pooled K̄/V̄ at every router layer (the
    documents routing would pick: in training and gold-evidence validation, the evidence)."""

    def __init__(self, k: dict[int, torch.Tensor], v: dict[int, torch.Tensor]) -> None:
        self.k, self.v = k, v

    def select(self, layer: int, q_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k[layer], self.v[layer]


def encode_memory(model: MSAModel, tok: Tokenizer, ex: Example, max_doc_tokens: int = 8192) -> FixedMemory:
    """Encode the example's documents as memory (as ingest does) and hold their K̄/V̄ (Hk, M, D)."""
    docs = [tok.document(d.text)[:max_doc_tokens] for d in ex.docs]
    # The memory is the backbone's, never the reader's: encoded with the adapters off.
    with torch.no_grad(), adapters_off(model):
        enc = model.encode(docs)
    # Outside inference mode: the tensors join the autograd graph as constants.
    k = {i: t.transpose(0, 1).clone() for i, t in enc.k.items()}
    v = {i: t.transpose(0, 1).clone() for i, t in enc.v.items()}
    return FixedMemory(k, v)


def memory_loss(model: MSAModel, tok: Tokenizer, it: Item) -> torch.Tensor:
    """One example through sparse generation: the prefix (positions from 0), then the prompt and
    answer after the memory slots, attending to the evidence's K̄/V̄ in the router layers."""
    dev = model.embed_tokens.weight.device
    mem = encode_memory(model, tok, it.ex)
    cache = KVCache(model.cfg.n_layer)
    model.hidden(torch.tensor([it.prefix], device=dev), cache=cache)
    row = it.prompt + it.answer
    start = len(it.prefix) + model.cfg.msa.top_k_docs
    pos = torch.arange(start, start + len(row), device=dev)[None]  # (1, T)
    h = model.hidden(torch.tensor([row], device=dev), pos, cache, mem)  # (1, T, C)
    tgt = torch.full((1, len(row)), -100, dtype=torch.long, device=dev)
    a = len(it.prompt)
    tgt[0, a - 1 : len(row) - 1] = torch.tensor(it.answer, device=dev)
    return answer_loss(model, h, tgt)


def memory_slots(model: MSAModel, tok: Tokenizer, items: list[Item], max_doc_tokens: int = 8192,
                 ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor]:
    """Every item's documents encoded as memory in one batched `encode` call; per router layer the
    pooled K̄ and V̄ of each item's documents (in prompt order), padded to (B, Hk, M, D), and which
    of the M slots are real (B, M)."""
    dev = model.embed_tokens.weight.device
    docs: list[list[int]] = []
    owner: list[int] = []
    for b, it in enumerate(items):
        for d in it.ex.docs:
            docs.append(tok.document(d.text)[:max_doc_tokens])
            owner.append(b)
    with torch.no_grad(), adapters_off(model):  # the backbone's memory, as ingest encodes it
        enc = model.encode(docs)
    B = len(items)
    counts = [0] * B
    for b, n in zip(owner, enc.n_chunks):
        counts[b] += n
    M = max(counts)
    gather = torch.zeros(B, M, dtype=torch.long)
    valid = torch.zeros(B, M, dtype=torch.bool)
    start = 0
    for b in range(B):  # an item's documents are consecutive, so are their chunks
        gather[b, : counts[b]] = torch.arange(start, start + counts[b])
        valid[b, : counts[b]] = True
        start += counts[b]
    gather = gather.reshape(-1).to(dev)

    def pad(t: torch.Tensor) -> torch.Tensor:  # (N, Hk, D) -> (B, Hk, M, D); a new, ordinary tensor
        N, Hk, D = t.shape
        return t.index_select(0, gather).view(B, M, Hk, D).transpose(1, 2).contiguous()

    return {i: pad(t) for i, t in enc.k.items()}, {i: pad(t) for i, t in enc.v.items()}, valid.to(dev)


def memory_batch_loss(model: MSAModel, tok: Tokenizer, items: list[Item], max_doc_tokens: int = 8192) -> torch.Tensor:
    """The memory path of `memory_loss` for a batch in one forward: each row is the template
    prefix (positions from 0), then the prompt and answer after the memory slots; router layers
    attend to the row's own documents' K̄/V̄ (placed between the prefix and the prompt, seen by the
    prompt only, as the prefix is computed before the memory at inference), other layers are plain
    causal. The loss is the mean over items of each item's mean answer-token cross-entropy, as the
    average of `memory_loss` over the items."""
    dev = model.embed_tokens.weight.device
    cfg = model.cfg
    p = len(items[0].prefix)
    if any(it.prefix != items[0].prefix for it in items):
        raise ValueError("memory batches share one template prefix")
    mk, mv, valid = memory_slots(model, tok, items, max_doc_tokens)
    B = len(items)
    rows = [it.prefix + it.prompt + it.answer for it in items]
    T = max(len(r) for r in rows)
    ids = np.zeros((B, T), dtype=np.int64)
    idx: list[np.ndarray] = []
    labels: list[int] = []
    weights: list[float] = []
    for b, (it, row) in enumerate(zip(items, rows)):
        ids[b, : len(row)] = row
        a = len(it.prefix) + len(it.prompt)
        idx.append(np.arange(b * T + a - 1, b * T + len(row) - 1, dtype=np.int64))
        labels += it.answer
        weights += [1.0 / (len(it.answer) * B)] * len(it.answer)
    K = cfg.msa.top_k_docs
    pos = torch.cat([torch.arange(p), torch.arange(p + K, T + K)])[None].expand(B, T)
    ids_d = torch.from_numpy(ids).to(dev)
    pos_d = pos.to(dev)
    idx_d = torch.from_numpy(np.concatenate(idx)).to(dev)
    labels_d = torch.tensor(labels, dtype=torch.long, device=dev)
    w_d = torch.tensor(weights, dtype=torch.float32, device=dev)

    x = model.embed_tokens(ids_d)  # (B, T, C)
    cos, sin = rope_cos_sin(pos_d, model.inv_freq, x.dtype)
    causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()  # (T, T)
    prompt_rows = (torch.arange(T, device=dev) >= p)[None, :, None]  # (1, T, 1)
    # Router layers' keys: [prefix | memory slots | prompt and answer].
    mask = torch.cat([causal[:, :p].expand(B, T, p), prompt_rows & valid[:, None, :],
                      causal[:, p:].expand(B, T, T - p)], dim=-1)[:, None]  # (B, 1, T, L)
    for i, block in enumerate(model.layers):
        attn = block.self_attn
        h = block.input_layernorm(x)
        q, k, v = attn.qkv(h, cos, sin)
        if attn.router:
            k_all = torch.cat([k[:, :, :p], mk[i].to(k.dtype), k[:, :, p:]], dim=2)  # (B, Hk, L, D)
            v_all = torch.cat([v[:, :, :p], mv[i].to(v.dtype), v[:, :, p:]], dim=2)
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, enable_gqa=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=True)
        x = x + attn.o_proj(y.transpose(1, 2).reshape(B, T, attn.H * attn.D))
        x = x + block.mlp(block.post_attention_layernorm(x))
    hs = x.reshape(B * T, -1).index_select(0, idx_d)  # (n, C)
    logits = model.logits(hs[None])[0]  # (n, V)
    ce = F.cross_entropy(logits.float(), labels_d, reduction="none")
    return (ce * w_d).sum()


# ---- adapters on and off ------------------------------------------------------------------------


@contextmanager
def adapters_off(model: MSAModel):  # noqa: ANN201
    """Run the base model: every adapter's scale set to 0 for the duration."""
    mods = [m for m in model.modules() if isinstance(m, LoRALinear)]
    saved = [m.scale for m in mods]
    for m in mods:
        m.scale = 0.0
    model._prefix_kv.clear()  # the shared template-prefix KV was computed with the adapters on
    try:
        yield
    finally:
        for m, s in zip(mods, saved):
            m.scale = s
        model._prefix_kv.clear()


# ---- validation ---------------------------------------------------------------------------------


@torch.no_grad()
def answer(model: MSAModel, tok: Tokenizer, it: Item, path: str, max_new_tokens: int) -> str:
    """Greedy answer on the text path (no memory, as `rag.read`) or the memory path (evidence as
    memory and as text, as `ask` generates)."""
    mem = encode_memory(model, tok, it.ex) if path == "memory" else None
    out = list(model.generate(it.prefix, it.prompt, mem, max_new_tokens=max_new_tokens, stop_ids=tok.stop_ids))
    return tok.decode(out).strip()


def score(ex: Example, reply: str) -> dict:
    from msa_agent.evals.common import contains_answer

    abst = is_abstention(reply)
    if not ex.answerable:
        return {"answerable": False, "abstained": abst}
    q = locate_quote(ex.docs[ex.gold].text, reply, ex.question) if not abst else None
    return {"answerable": True, "abstained": abst, "contains": contains_answer(reply, ex.answer),
            "quote_ok": bool(q and contains_answer(q.text, ex.answer))}


def summarize(rows: list[dict]) -> dict:
    ans = [r for r in rows if r["answerable"]]
    neg = [r for r in rows if not r["answerable"]]

    def pct(xs: list[bool]) -> float | None:
        return round(100 * sum(xs) / len(xs), 1) if xs else None

    return {"n": len(ans), "n_unanswerable": len(neg), "contains": pct([r["contains"] for r in ans]),
            "quote": pct([r["quote_ok"] for r in ans]), "wrong_abstention": pct([r["abstained"] for r in ans]),
            "abstention": pct([r["abstained"] for r in neg])}


def validate(model: MSAModel, tok: Tokenizer, val: dict[str, list[Item]], paths: tuple[str, ...], max_new_tokens: int,
             log: Callable[[str], None], samples: int = 2) -> dict:
    """Base against tuned on each validation set and path: contains-answer, quote, abstention.
    Generation runs the plain inference path: the adapters merged into the weights (tuned, as the
    product loads them) or left out (base), projections fused."""
    model.eval()
    out: dict = {}
    for which in ("base", "tuned"):
        with merged(model, base_only=which == "base"):
            for path in paths:
                for domain, items in val.items():
                    t0 = time.perf_counter()
                    rows = []
                    shown = 0
                    for it in items:
                        reply = answer(model, tok, it, path, max_new_tokens)
                        rows.append(score(it.ex, reply))
                        if shown < samples and which == "tuned":
                            log(f"  [{domain}/{path}] Q: {it.ex.question} | gold: {it.ex.answer} | got: {reply}")
                            shown += 1
                    s = summarize(rows)
                    s["seconds"] = round(time.perf_counter() - t0, 1)
                    out[f"{which}/{path}/{domain}"] = s
                    log(f"val {which:5} {path:6} {domain:9} contains {s['contains']}% quote {s['quote']}% "
                        f"abstain(neg) {s['abstention']}% wrong-abstain {s['wrong_abstention']}% ({s['seconds']} s)")
    return out


def pick_validation(items: list[Item], per_domain: int, unanswerable: float) -> dict[str, list[Item]]:
    """Per domain `per_domain` questions, about `unanswerable` of them unanswerable (as many as
    there are), the rest answerable, in the pool's order."""
    out: dict[str, list[Item]] = {}
    n_neg = round(per_domain * unanswerable)
    pos: dict[str, list[Item]] = {}
    neg: dict[str, list[Item]] = {}
    for it in items:
        (pos if it.ex.answerable else neg).setdefault(it.ex.domain, []).append(it)
    order = {id(it): j for j, it in enumerate(items)}
    for d in sorted(set(pos) | set(neg)):
        ng = neg.get(d, [])[:n_neg]
        chosen = ng + pos.get(d, [])[: per_domain - len(ng)]
        out[d] = sorted(chosen, key=lambda it: order[id(it)])
    return out


# ---- training -----------------------------------------------------------------------------------


def train_reader(model: MSAModel, tok: Tokenizer, cfg: ReaderTrainConfig, out_dir: Path, *,
                 model_dir: Path | None = None, log: Callable[[str], None] = print,
                 validate_paths: tuple[str, ...] = ("text", "memory")) -> dict:
    """Fine-tune `model` (loaded with `load_model`; it is unfused and wrapped with adapters here),
    write `<out_dir>/reader-smollm2-135m.safetensors` and its JSON record; returns the record.

    The step loop never waits for the device: losses stay on it until a log line, the answer
    positions are gathered by index, and the host synchronises only to time the schedule."""
    t_all = time.perf_counter()
    dev = model.embed_tokens.weight.device
    cuda = dev.type == "cuda"
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)

    t0 = time.perf_counter()
    train_ex = make_examples(cfg.examples, cfg.seed, "train", cfg.mix, cfg.max_code_files, cfg.real_corpus)
    val_ex = make_examples(cfg.val_per_domain * 3 * 4, cfg.seed + 1, "val", cfg.mix, max(200, cfg.max_code_files // 4),
                           cfg.real_corpus)
    items = tokenize(tok, train_ex, cfg.max_len)
    val = pick_validation(tokenize(tok, val_ex, cfg.max_len), cfg.val_per_domain, cfg.val_unanswerable)
    data_s = time.perf_counter() - t0
    n_tok = sum(len(it) for it in items)
    n_ans = sum(len(it.answer) for it in items)
    by_domain: dict[str, int] = {}
    neg_by_domain: dict[str, int] = {}
    for it in items:
        by_domain[it.ex.domain] = by_domain.get(it.ex.domain, 0) + 1
        neg_by_domain[it.ex.domain] = neg_by_domain.get(it.ex.domain, 0) + (not it.ex.answerable)
    log(f"data: {len(items)} examples ({by_domain}), {n_tok:,} tokens ({n_ans:,} answer tokens), "
        f"unanswerable {neg_by_domain}; val {[(k, len(v), sum(not i.ex.answerable for i in v)) for k, v in val.items()]} "
        f"(domain, questions, unanswerable); {data_s:.1f} s")

    params = add_lora(model, cfg.rank, cfg.alpha, cfg.seed)
    n_params = sum(p.numel() for p in params)
    log(f"adapters: rank {cfg.rank}, alpha {cfg.alpha}, {n_params:,} parameters")
    if cfg.init_adapter is not None:
        load_lora(model, cfg.init_adapter, cfg.rank, cfg.alpha)
        log(f"adapters start from {cfg.init_adapter}")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99), fused=True if cuda else None)
    plan = batches(items, cfg.batch_tokens, rng)
    prefix0 = items[0].prefix if items else []
    mem_pool = [it for it in items if len(it) <= 1024 and it.prefix == prefix0]
    cap = len(plan) if cfg.max_steps is None else min(len(plan), cfg.max_steps)
    total = cap
    pad_tok = sum(max(len(i) for i in b) * len(b) for b in plan)
    log(f"plan: {len(plan)} text batches of ≤{cfg.batch_tokens} padded tokens ({n_tok / max(1, pad_tok):.0%} real); "
        f"memory path every {cfg.mem_every} steps, {cfg.mem_batch} examples in one batch")

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))))

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    model.train()
    t_train = time.perf_counter()
    losses: list[float] = []
    mem_losses: list[float] = []
    pending: list[torch.Tensor] = []
    mem_pending: list[torch.Tensor] = []
    seen_tok = 0
    step = 0
    gap_choices = (0, model.cfg.msa.top_k_docs)
    # The schedule is fitted to the time budget from the step time measured after warm-up (steps
    # 3-13), then re-fitted at a quarter, half and three quarters of the budget.
    t_mark: tuple[int, float] | None = None
    refits = [0.25, 0.5, 0.75]

    def flush() -> None:
        if pending:
            losses.extend(torch.stack(pending).tolist())
            pending.clear()
        if mem_pending:
            mem_losses.extend(torch.stack(mem_pending).tolist())
            mem_pending.clear()

    while step < total:
        tb = prepare_text(plan[step], rng.choice(gap_choices)).to(dev)
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        h = model.hidden(tb.ids, tb.pos)
        loss = answer_loss(model, h, tb.tgt, tb.idx, tb.labels)
        loss.backward()
        pending.append(loss.detach())
        seen_tok += int(tb.ids.numel())
        if cfg.mem_every and step % cfg.mem_every == 0 and mem_pool:
            chosen = rng.sample(mem_pool, min(cfg.mem_batch, len(mem_pool)))
            lm = memory_batch_loss(model, tok, chosen)
            (lm * cfg.mem_weight).backward()
            mem_pending.append(lm.detach())
            seen_tok += sum(len(it) for it in chosen)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        elapsed = time.perf_counter() - t_train
        if step == 3 or (t_mark is not None and (step == t_mark[0] + 10 or (refits and elapsed >= refits[0] * cfg.time_budget_s))):
            sync()
            elapsed = time.perf_counter() - t_train
            if t_mark is None:
                t_mark = (step, elapsed)
            elif step > t_mark[0]:
                while refits and elapsed >= refits[0] * cfg.time_budget_s:
                    refits.pop(0)
                per_step = (elapsed - t_mark[1]) / (step - t_mark[0])
                fit = step + int(max(0.0, cfg.time_budget_s - elapsed) / per_step)
                new_total = max(step + 1, min(cap, fit))
                if new_total != total:
                    log(f"time budget {cfg.time_budget_s:.0f} s at {per_step:.3f} s/step (steps {t_mark[0]}-{step}): "
                        f"{new_total} of {cap} steps")
                    total = new_total
        if step % cfg.log_every == 0 or step == total:
            flush()
            elapsed = time.perf_counter() - t_train
            recent = losses[-cfg.log_every:]
            mrec = mem_losses[-max(1, cfg.log_every // max(1, cfg.mem_every)):]
            log(f"step {step}/{total} loss {sum(recent) / len(recent):.4f}"
                + (f" mem-loss {sum(mrec) / len(mrec):.4f}" if mrec else "")
                + f" lr {lr_at(step - 1):.2e} {seen_tok / elapsed:,.0f} tok/s {elapsed:.0f} s")
        if elapsed > cfg.time_budget_s * 1.1:
            log(f"stopping at the time budget after {step} steps")
            break
    flush()
    sync()
    train_s = time.perf_counter() - t_train

    out_dir = Path(out_dir)
    tail = losses[-min(len(losses), 50):]
    record = {
        "backbone": backbone_id(model_dir) if model_dir is not None else None,
        "backbone_bytes": backbone_bytes(model_dir) if model_dir is not None else None,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "data": {"examples": len(items), "by_domain": by_domain, "tokens": n_tok, "answer_tokens": n_ans,
                 "unanswerable": sum(not it.ex.answerable for it in items), "unanswerable_by_domain": neg_by_domain,
                 "seconds": round(data_s, 1)},
        "trainable_parameters": n_params, "steps": step, "planned_steps": total, "train_seconds": round(train_s, 1),
        "tokens_per_s": round(seen_tok / train_s) if train_s else None,
        "first_loss": round(losses[0], 4) if losses else None, "final_loss": round(sum(tail) / len(tail), 4) if tail else None,
        "final_memory_loss": round(sum(mem_losses[-20:]) / len(mem_losses[-20:]), 4) if mem_losses else None,
        "card": torch.cuda.get_device_name(0) if cuda else "cpu",
        "dtype": str(model.embed_tokens.weight.dtype).removeprefix("torch."),
        "abstention": ABSTAIN,
    }
    path = save_adapter(model, out_dir / f"{ADAPTER_NAME}.safetensors", record=record)
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) after {train_s:.0f} s of training")
    if validate_paths:
        t0 = time.perf_counter()
        record["validation"] = validate(model, tok, val, validate_paths, cfg.max_new_tokens, log)
        record["validation_seconds"] = round(time.perf_counter() - t0, 1)
    record["total_seconds"] = round(time.perf_counter() - t_all, 1)
    save_adapter(model, path, record=record)
    (out_dir / "val_examples.jsonl").write_text("".join(json.dumps(it.ex.as_dict()) + "\n" for v in val.values() for it in v))
    return record


def run(model: str | Path | None, out_dir: Path, cfg: ReaderTrainConfig, *, device: str = "cpu",
        dtype: str = "bfloat16", log: Callable[[str], None] = print,
        validate_paths: tuple[str, ...] = ("text", "memory")) -> dict:
    """Load the backbone (without any adapter), fine-tune it and write the adapter to `out_dir`."""
    from msa_agent import settings
    from msa_agent.engine import DTYPES
    from msa_agent.errors import BadInput
    from msa_agent.model.weights import ModelNotFound, load_model, resolve_model_dir

    if dtype not in DTYPES:
        raise BadInput(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
    t0 = time.perf_counter()
    try:
        model_dir = resolve_model_dir(settings.model_spec(model), settings.model_cache_dir())
    except ModelNotFound as e:
        raise BadInput(str(e)) from None
    m = load_model(model_dir, dtype=DTYPES[dtype], device=device)
    tok = Tokenizer(model_dir)
    log(f"model {model_dir} on {device} ({dtype}) loaded in {time.perf_counter() - t0:.1f} s")
    return train_reader(m, tok, cfg, out_dir, model_dir=model_dir, log=log, validate_paths=validate_paths)
