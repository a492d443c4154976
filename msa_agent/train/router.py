"""Training the MSA router projectors on the frozen backbone (`msa train router`).

The backbone is frozen and `router_k_proj` is linear without bias, so a chunk's pooled routing key
is router_k_proj(mean of h over the chunk). One no-grad pass of the backbone over all documents
and questions caches, per router layer, the chunk means of h (documents) and the per-token h of
the question tokens that routing uses (questions, laid out exactly as `ask` lays out its prompt);
then only the projectors train, for many epochs, on that cache.

Loss: the paper's Eq. 5 at temperature 0.1 on the scores routing itself computes (model/losses.py:
mean over heads, the configured reduction over question tokens, max over chunks), with in-batch
negatives, half of each batch from one source (package, contract, log) and one hard negative per
question from its own source. Runs in resumable pieces under a time budget; the checkpoint is one
file per router layer (each a few MB) plus a JSON state; `export` writes the router safetensors
(fp16) and its JSON record.

Notation used in shape comments: L router layers, B questions, S question tokens, M candidate
documents, C chunks per document, X hidden size, H/Hk heads, D head dim.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from msa_agent.errors import BadInput
from msa_agent.kernels.pooling import chunk_mean_pool
from msa_agent.model.losses import batched_doc_scores, contrastive_routing_loss

from .router_data import RouterData, make_router_data

RECORD_FORMAT = 1
ROUTER_FILE = "router.safetensors"
RECORD_FILE = "router.json"


@dataclass
class RouterTrainConfig:
    seed: int = 0
    steps: int = 6000  # the schedule's length; a fresh piece fits it to its time budget
    batch: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup: int = 50
    temperature: float = 0.1
    query_reduce: str = "max"
    cosine: bool = True
    max_question_tokens: int = 48
    hard_negatives: int = 1
    same_group_fraction: float = 0.5
    layer_block: int = 5  # router layers scored together (bounds memory)
    time_budget_s: float = 300.0  # training time of this piece
    total_budget_s: float | None = None  # the whole piece (data, backbone pass, training, export)
    fit_schedule: bool = True  # a fresh run shortens `steps` to what its time budget holds
    checkpoint_every_s: float = 60.0
    validate_every_s: float = 45.0  # the best validated weights are the ones exported
    # data
    max_files: int = 3000
    per_package: int = 300
    contracts: int = 1200
    logs: int = 600
    needles: int = 4000  # fact sentences in unrelated prose, asked about by their key (router_data.needle_pairs)
    max_pairs: int = 64000
    val_pairs: int = 1500
    val_pool: int = 6000  # validation documents plus distractors from training sources
    batch_tokens: int = 65536  # backbone pass

    def check(self) -> None:
        if self.query_reduce not in ("max", "mean"):
            raise BadInput(f"query reduction {self.query_reduce!r}: max or mean")
        if self.batch < 2 or self.steps < 1:
            raise BadInput("batch must be at least 2 and steps at least 1")
        if self.lr <= 0 or self.temperature <= 0:
            raise BadInput("lr and temperature must be positive")

    def digest(self) -> str:
        keep = {k: v for k, v in asdict(self).items()
                if k not in ("time_budget_s", "total_budget_s", "checkpoint_every_s", "validate_every_s", "steps",
                             "fit_schedule")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


# ---- the backbone pass ---------------------------------------------------------------------------------


class _Capture:
    """Forward hooks that keep each router layer's input_layernorm output (the h routing projects)."""

    def __init__(self, model, layers: list[int]) -> None:  # noqa: ANN001
        self.h: dict[int, torch.Tensor] = {}
        self.handles = [model.layers[i].input_layernorm.register_forward_hook(self._hook(i)) for i in layers]

    def _hook(self, i: int):  # noqa: ANN202
        def fn(_m, _inp, out):  # noqa: ANN001, ANN202
            self.h[i] = out

        return fn

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class Features:
    """The frozen backbone's cache. Documents: chunk means of h (L, N_chunks, X) with each document's
    first chunk and chunk count; questions: h of their routing tokens (L, N_tokens, X) with offsets."""

    doc_h: torch.Tensor
    doc_start: torch.Tensor  # (n_docs,)
    doc_chunks: torch.Tensor  # (n_docs,)
    q_h: torch.Tensor
    q_start: torch.Tensor  # (n_questions,)
    q_len: torch.Tensor  # (n_questions,)


@torch.inference_mode()
def document_features(engine, texts: list[str], *, batch_tokens: int, store_dtype: torch.dtype,  # noqa: ANN001
                      log=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Chunk means of h per router layer for documents encoded as ingest encodes them."""
    model, cfg = engine.model, engine.cfg
    layers, P = cfg.router_layers, cfg.msa.pooling_kernel_size
    dev = model.embed_tokens.weight.device
    toks = engine.doc_tokens(texts)
    n_chunks = torch.tensor([(len(t) + P - 1) // P for t in toks])
    start = torch.cumsum(n_chunks, 0) - n_chunks
    total = int(n_chunks.sum())
    out = torch.empty(len(layers), total, cfg.n_embd, dtype=store_dtype, device=dev)
    cap = _Capture(model, layers)
    t0, done = time.perf_counter(), 0
    t_log = t0
    try:
        for idx, _ in _batches([len(t) for t in toks], batch_tokens):
            lengths = torch.tensor([len(toks[j]) for j in idx])
            T = int(lengths.max())
            ids = torch.zeros(len(idx), T, dtype=torch.long)
            for b, j in enumerate(idx):
                ids[b, : len(toks[j])] = torch.tensor(toks[j])
            ids = ids.to(dev)
            pos = torch.arange(T, device=dev).expand(len(idx), T)
            model.hidden(ids, pos, stop_after=cfg.last_router_layer)
            # Rows come back in length order; chunk rows of one document are contiguous.
            dst = torch.cat([torch.arange(int(start[j]), int(start[j] + n_chunks[j])) for j in idx]).to(dev)
            for li, layer in enumerate(layers):
                pooled = chunk_mean_pool(cap.h[layer][:, None], lengths, P)[:, 0]  # (N, X)
                out[li, dst] = pooled.to(store_dtype)
            done += int(lengths.sum())
            if log and time.perf_counter() - t_log > 20:
                t_log = time.perf_counter()
                log(f"  documents: {done:,} tokens, {done / (t_log - t0):,.0f} tokens/s")
    finally:
        cap.close()
    if log:
        dt = time.perf_counter() - t0
        log(f"documents: {len(toks)} ({done:,} tokens, {total:,} chunks) in {dt:.1f} s, {done / max(dt, 1e-9):,.0f} tokens/s")
    return out, start, n_chunks


def question_layout(engine, question: str, max_tokens: int,  # noqa: ANN001
                    prefix: list[int] | None = None) -> tuple[list[int], list[int], list[bool]]:
    """Token ids, positions and routing mask of a question laid out as `ask` routes it: the chat
    prefix at positions from 0, then the user turn after the memory slots."""
    from msa_agent.ask import SYSTEM, _prompt

    prefix = prefix if prefix is not None else engine.tok.chat_prefix(SYSTEM)
    words = engine.tok.encode(question)
    if len(words) > max_tokens:
        question = engine.tok.decode(words[:max_tokens])
    ids, mask = _prompt(engine, [], 0, question)
    start = len(prefix) + engine.cfg.msa.top_k_docs
    positions = list(range(len(prefix))) + list(range(start, start + len(ids)))
    return prefix + ids, positions, [False] * len(prefix) + mask.tolist()


@torch.inference_mode()
def question_features(engine, questions: list[str], *, max_tokens: int, batch_tokens: int,  # noqa: ANN001
                      store_dtype: torch.dtype, log=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    model, cfg = engine.model, engine.cfg
    layers = cfg.router_layers
    dev = model.embed_tokens.weight.device
    from msa_agent.ask import SYSTEM

    prefix = engine.tok.chat_prefix(SYSTEM)
    lay = [question_layout(engine, q, max_tokens, prefix) for q in questions]
    q_len = torch.tensor([sum(m) for _, _, m in lay])
    q_start = torch.cumsum(q_len, 0) - q_len
    out = torch.empty(len(layers), int(q_len.sum()), cfg.n_embd, dtype=store_dtype, device=dev)
    cap = _Capture(model, layers)
    t0 = time.perf_counter()
    try:
        for idx, _ in _batches([len(x[0]) for x in lay], batch_tokens):
            T = max(len(lay[j][0]) for j in idx)
            ids = torch.zeros(len(idx), T, dtype=torch.long)
            pos = torch.zeros(len(idx), T, dtype=torch.long)
            mask = torch.zeros(len(idx), T, dtype=torch.bool)
            for b, j in enumerate(idx):
                i_, p_, m_ = lay[j]
                ids[b, : len(i_)] = torch.tensor(i_)
                pos[b, : len(p_)] = torch.tensor(p_)
                pos[b, len(p_):] = p_[-1] + 1 + torch.arange(T - len(p_))
                mask[b, : len(m_)] = torch.tensor(m_)
            model.hidden(ids.to(dev), pos.to(dev), stop_after=cfg.last_router_layer)
            mask = mask.to(dev)
            dst = torch.cat([torch.arange(int(q_start[j]), int(q_start[j] + q_len[j])) for j in idx]).to(dev)
            for li, layer in enumerate(layers):
                out[li, dst] = cap.h[layer][mask].to(store_dtype)  # rows in (question, token) order
    finally:
        cap.close()
    if log:
        log(f"questions: {len(questions)} ({int(q_len.sum()):,} routing tokens) in {time.perf_counter() - t0:.1f} s")
    return out, q_start, q_len


def _batches(lengths: list[int], batch_tokens: int):  # noqa: ANN202
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    cur: list[int] = []
    for i in order:
        if cur and lengths[i] * (len(cur) + 1) > batch_tokens:
            yield cur, lengths[cur[-1]]
            cur = []
        cur.append(i)
    if cur:
        yield cur, lengths[cur[-1]]


# ---- the projectors ------------------------------------------------------------------------------------


class Projectors(torch.nn.Module):
    """router_q_proj and router_k_proj of every router layer, stacked: wq (L, H·D, X), wk (L, Hk·D, X)."""

    def __init__(self, wq: torch.Tensor, wk: torch.Tensor, n_head: int, n_kv_head: int) -> None:
        super().__init__()
        self.wq = torch.nn.Parameter(wq.float().clone())
        self.wk = torch.nn.Parameter(wk.float().clone())
        self.H, self.Hk = n_head, n_kv_head

    @classmethod
    def from_backbone(cls, model) -> Projectors:  # noqa: ANN001
        """Initialised from each router layer's own attention q_proj / k_proj."""
        cfg = model.cfg
        wq = torch.stack([model.layers[i].self_attn.q_proj.weight.detach().float() for i in cfg.router_layers])
        wk = torch.stack([model.layers[i].self_attn.k_proj.weight.detach().float() for i in cfg.router_layers])
        return cls(wq, wk, cfg.n_head, cfg.n_kv_head)

    def queries(self, h: torch.Tensor, sl: slice) -> torch.Tensor:
        """h (l, B, S, X) → routing queries (l, B, S, H, D)."""
        q = torch.einsum("lbsx,lyx->lbsy", h.float(), self.wq[sl])
        return q.unflatten(-1, (self.H, -1))

    def keys(self, h: torch.Tensor, sl: slice) -> torch.Tensor:
        """chunk means h (l, M, C, X) → pooled routing keys (l, M, C, Hk, D)."""
        k = torch.einsum("lmcx,lyx->lmcy", h.float(), self.wk[sl])
        return k.unflatten(-1, (self.Hk, -1))

    def state_for_model(self, layers: list[int]) -> dict[str, torch.Tensor]:
        out = {}
        for li, i in enumerate(layers):
            out[f"model.layers.{i}.self_attn.router_q_proj.0.weight"] = self.wq[li].detach().to(torch.float16).contiguous().cpu()
            out[f"model.layers.{i}.self_attn.router_k_proj.0.weight"] = self.wk[li].detach().to(torch.float16).contiguous().cpu()
        return out


def _gather_questions(f: Features, qi: torch.Tensor, lsl: slice) -> tuple[torch.Tensor, torch.Tensor]:
    lens = f.q_len[qi]  # (B,)
    S = int(lens.max())
    ar = torch.arange(S, device=lens.device)
    mask = ar[None, :] < lens[:, None]  # (B, S)
    idx = (f.q_start[qi][:, None] + ar[None, :]).clamp(max=f.q_h.shape[1] - 1)  # (B, S)
    return f.q_h[lsl][:, idx], mask  # (l, B, S, X), (B, S)


def _gather_docs(f: Features, di: torch.Tensor, lsl: slice) -> tuple[torch.Tensor, torch.Tensor]:
    n = f.doc_chunks[di]
    C = int(n.max())
    ar = torch.arange(C, device=n.device)
    mask = ar[None, :] < n[:, None]  # (M, C)
    idx = (f.doc_start[di][:, None] + ar[None, :]).clamp(max=f.doc_h.shape[1] - 1)  # (M, C)
    return f.doc_h[lsl][:, idx], mask  # (l, M, C, X), (M, C)


# ---- batches ---------------------------------------------------------------------------------------------


class Sampler:
    """Batches of training pairs: part of each batch from one source (hard in-batch negatives), the
    rest at random; plus hard negatives from each question's own source."""

    def __init__(self, data: RouterData, train: list, cfg: RouterTrainConfig, origin: list[int]) -> None:
        self.pairs, self.cfg, self.origin = train, cfg, origin
        self.by_group: dict[str, list[int]] = {}
        for j, p in enumerate(train):
            self.by_group.setdefault(p.group, []).append(j)
        self.group_docs: dict[str, list[int]] = {}
        for p in train:
            self.group_docs.setdefault(p.group, [])
        for d, doc in enumerate(data.docs):
            if doc.group in self.group_docs:
                self.group_docs[doc.group].append(d)
        self.groups = [g for g, js in self.by_group.items() if len(js) >= 4]

    def batch(self, rng: random.Random) -> tuple[list[int], list[int]]:
        """(pair indices, hard-negative document indices)."""
        B = min(self.cfg.batch, len(self.pairs))
        chosen: list[int] = []
        if self.groups and self.cfg.same_group_fraction > 0:
            g = rng.choice(self.groups)
            js = self.by_group[g]
            chosen = rng.sample(js, min(len(js), int(B * self.cfg.same_group_fraction)))
        seen = set(chosen)
        while len(chosen) < B:
            j = rng.randrange(len(self.pairs))
            if j not in seen:
                seen.add(j)
                chosen.append(j)
        negs = []
        for j in chosen:
            p = self.pairs[j]
            docs = self.group_docs.get(p.group, [])
            for _ in range(self.cfg.hard_negatives):
                if len(docs) > 1:
                    d = rng.choice(docs)
                    if self.origin[d] != self.origin[p.doc]:
                        negs.append(d)
        return chosen, negs


# ---- training -----------------------------------------------------------------------------------------


@dataclass
class TrainState:
    step: int = 0
    elapsed_s: float = 0.0
    losses: list[list[float]] = field(default_factory=list)  # [step, loss] every few steps
    pieces: int = 0


def _origins(data: RouterData) -> list[int]:
    """Documents made from the same source text (a docstring or a line taken out) share an origin:
    never each other's negatives."""
    key: dict[tuple[str, str], int] = {}
    out = []
    for d in data.docs:
        # The first 2 lines identify a definition or section within its file well enough.
        k = (d.path, "\n".join(d.text.splitlines()[:1]))
        out.append(key.setdefault(k, len(key)))
    return out


def lr_at(step: int, cfg: RouterTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_steps(proj: Projectors, opt: torch.optim.Optimizer, feats: Features, sampler: Sampler,
                cfg: RouterTrainConfig, state: TrainState, rng: random.Random, *, deadline: float,
                pair_q: torch.Tensor, pair_doc: torch.Tensor, origin: torch.Tensor, log=None,  # noqa: ANN001
                on_checkpoint=None, on_validate=None) -> None:  # noqa: ANN001
    """Train until cfg.steps or the deadline (time.perf_counter()); the state advances in place."""
    L = proj.wq.shape[0]
    dev = proj.wq.device
    last_ck = last_val = time.perf_counter()
    t_log = time.perf_counter()
    fit_at = 20 if cfg.fit_schedule and state.step == 0 else None
    last = None
    t_fit = time.perf_counter()
    while state.step < cfg.steps and time.perf_counter() < deadline:
        if fit_at is not None and state.step == fit_at:
            # The cosine schedule should end when the time does: measured step time decides.
            per = (time.perf_counter() - t_fit) / fit_at
            fit = fit_at + int((deadline - time.perf_counter()) / per * 0.9)  # room for validations
            if fit < cfg.steps:
                cfg.steps = max(fit, fit_at + 1)
                if log:
                    log(f"{per * 1000:.0f} ms a step: schedule fitted to {cfg.steps} steps")
            fit_at = None
        t_step = time.perf_counter()
        chosen, negs = sampler.batch(rng)
        ch = torch.tensor(chosen, device=dev)
        qi, pos_doc = pair_q[ch], pair_doc[ch]  # (B,)
        cand = torch.unique(torch.cat([pos_doc, torch.tensor(negs, dtype=torch.long, device=dev)]))  # (M,)
        positive = cand[None, :] == pos_doc[:, None]  # (B, M)
        same = origin[cand][None, :] == origin[pos_doc][:, None]
        valid = positive | ~same  # a variant of the positive's text is no negative
        for g in opt.param_groups:
            g["lr"] = lr_at(state.step, cfg)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for l0 in range(0, L, cfg.layer_block):
            lsl = slice(l0, min(L, l0 + cfg.layer_block))
            hq, qmask = _gather_questions(feats, qi, lsl)
            hd, kmask = _gather_docs(feats, cand, lsl)
            s = batched_doc_scores(proj.queries(hq, lsl), qmask, proj.keys(hd, lsl), kmask,
                                   query_reduce=cfg.query_reduce, cosine=cfg.cosine)  # (l, B, M)
            n_l = lsl.stop - lsl.start
            loss = contrastive_routing_loss(s, positive, cfg.temperature, valid) * n_l / L
            loss.backward()
            total += float(loss.detach())
        opt.step()
        state.step += 1
        state.elapsed_s += time.perf_counter() - t_step
        last = [state.step, round(total, 5)]
        if state.step % 10 == 0 or state.step == 1:
            state.losses.append(last)
        if log and (time.perf_counter() - t_log > 15 or state.step == 1):
            t_log = time.perf_counter()
            log(f"step {state.step}/{cfg.steps} loss {total:.4f} lr {lr_at(state.step, cfg):.2e} "
                f"({state.elapsed_s:.0f} s training)")
        if on_checkpoint and time.perf_counter() - last_ck > cfg.checkpoint_every_s:
            on_checkpoint()
            last_ck = time.perf_counter()
        if on_validate and time.perf_counter() - last_val > cfg.validate_every_s:
            on_validate()
            last_val = time.perf_counter()
    if last is not None and (not state.losses or state.losses[-1][0] != last[0]):
        state.losses.append(last)  # the final loss is the last step's


# ---- validation ---------------------------------------------------------------------------------------


@torch.no_grad()
def validate(proj: Projectors, feats: Features, q_index: list[int], positives: list[int], pool: list[int],
             origin: list[int], cfg: RouterTrainConfig, top_k: int = 16, batch: int = 32,
             tasks: list[str] | None = None) -> dict:
    """Recall@1/5/16 and MRR of routing over `pool` documents: each layer's scores, and the layers'
    top-k lists fused by reciprocal rank (how `msa` combines its router layers). `tasks` (one per
    question): also recall@16 per task family (`needle`, `contract`, `log`, code tasks)."""
    from msa_agent.memory import RRF_K

    if not q_index:
        return {}
    dev = proj.wq.device
    L = proj.wq.shape[0]
    pool_t = torch.tensor(pool, device=dev)
    n = len(pool)
    pool_origin = torch.tensor([origin[d] for d in pool], device=dev)
    want = torch.tensor([origin[d] for d in positives], device=dev)
    fused = torch.zeros(len(q_index), n, device=dev)
    per_layer_r5 = []
    k = min(top_k, n)
    for li in range(L):
        lsl = slice(li, li + 1)
        hd, kmask = _gather_docs(feats, pool_t, lsl)
        keys = proj.keys(hd, lsl)  # (1, n, C, Hk, D)
        hits5 = 0
        for b0 in range(0, len(q_index), batch):
            qi = torch.tensor(q_index[b0 : b0 + batch], device=dev)
            hq, qmask = _gather_questions(feats, qi, lsl)
            s = batched_doc_scores(proj.queries(hq, lsl), qmask, keys, kmask, query_reduce=cfg.query_reduce,
                                   cosine=cfg.cosine)[0]  # (b, n)
            top = torch.topk(s, k, dim=1).indices  # (b, k)
            ranks = torch.arange(k, device=dev, dtype=torch.float32)
            fused[b0 : b0 + len(qi)].scatter_add_(1, top, (1.0 / (RRF_K + ranks + 1)).expand_as(top).contiguous())
            ok = pool_origin[top[:, : min(5, k)]] == want[b0 : b0 + len(qi), None]
            hits5 += int(ok.any(1).sum())
        per_layer_r5.append(round(100 * hits5 / len(q_index), 1))
    order = torch.argsort(fused, dim=1, descending=True)  # (Q, n)
    match = pool_origin[order] == want[:, None]  # (Q, n)
    fused_nonzero = (torch.gather(fused, 1, order) > 0)
    match = match & fused_nonzero  # documents no layer picked are not ranked
    first = torch.where(match.any(1), match.float().argmax(1), torch.full_like(want, -1))
    out = {"n": len(q_index), "pool": n}
    for kk in (1, 5, 16):
        out[f"recall@{kk}"] = round(100 * float(((first >= 0) & (first < kk)).float().mean()), 1)
    rr = torch.where(first >= 0, 1.0 / (first.float() + 1), torch.zeros_like(first, dtype=torch.float32))
    out["mrr"] = round(float(rr.mean()), 4)
    out["per_layer_recall@5"] = per_layer_r5
    if tasks:
        hit16 = ((first >= 0) & (first < 16)).tolist()
        fam: dict[str, list[bool]] = {}
        for t, h in zip(tasks, hit16):
            fam.setdefault(task_family(t), []).append(h)
        out["recall@16_by_task"] = {t: {"n": len(h), "recall@16": round(100 * sum(h) / len(h), 1)}
                                    for t, h in sorted(fam.items())}
    return out


def task_family(task: str) -> str:
    """contract_term → contract, log_dropout → log, needle → needle, docstring/name/... → code."""
    head = task.split("_")[0]
    return head if head in ("contract", "log", "needle") else "code"


# ---- checkpoint, export ---------------------------------------------------------------------------------


def save_checkpoint(ckpt: Path, proj: Projectors, opt: torch.optim.Optimizer, state: TrainState,
                    cfg: RouterTrainConfig, layers: list[int], rng: random.Random) -> None:
    """One safetensors file per router layer (weights fp32, Adam moments bf16), written then renamed."""
    from safetensors.torch import save_file

    ckpt.mkdir(parents=True, exist_ok=True)
    st = opt.state.get(proj.wq, {}), opt.state.get(proj.wk, {})
    for li, layer in enumerate(layers):
        t = {"wq": proj.wq[li].detach().float().cpu().contiguous(), "wk": proj.wk[li].detach().float().cpu().contiguous()}
        for name, s in zip(("wq", "wk"), st):
            if "exp_avg" in s:
                t[f"{name}.exp_avg"] = s["exp_avg"][li].to(torch.bfloat16).cpu().contiguous()
                t[f"{name}.exp_avg_sq"] = s["exp_avg_sq"][li].to(torch.bfloat16).cpu().contiguous()
        tmp = ckpt / f".layer-{layer:02d}.safetensors"
        save_file(t, str(tmp))
        os.replace(tmp, ckpt / f"layer-{layer:02d}.safetensors")
    adam_step = int(st[0]["step"]) if "step" in st[0] else 0
    meta = {"state": asdict(state), "config": asdict(cfg), "digest": cfg.digest(), "layers": layers,
            "adam_step": adam_step, "rng": _rng_state(rng)}
    tmp = ckpt / ".state.json"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, ckpt / "state.json")


def _rng_state(rng: random.Random) -> list:
    v, s, g = rng.getstate()
    return [v, list(s), g]


def load_checkpoint(ckpt: Path, proj: Projectors, opt: torch.optim.Optimizer, cfg: RouterTrainConfig,
                    layers: list[int], rng: random.Random) -> TrainState | None:
    from safetensors.torch import load_file

    f = ckpt / "state.json"
    if not f.is_file():
        return None
    meta = json.loads(f.read_text())
    if meta["digest"] != cfg.digest() or meta["layers"] != layers:
        raise BadInput(f"{ckpt}: a checkpoint of other settings (pass another --checkpoint or the same options)")
    dev = proj.wq.device
    moments: dict[str, list] = {"wq.exp_avg": [], "wq.exp_avg_sq": [], "wk.exp_avg": [], "wk.exp_avg_sq": []}
    with torch.no_grad():
        for li, layer in enumerate(layers):
            t = load_file(str(ckpt / f"layer-{layer:02d}.safetensors"))
            proj.wq[li].copy_(t["wq"])
            proj.wk[li].copy_(t["wk"])
            for k in moments:
                if k in t:
                    moments[k].append(t[k].float())
    if meta["adam_step"] and all(len(v) == len(layers) for v in moments.values()):
        for p, name in ((proj.wq, "wq"), (proj.wk, "wk")):
            opt.state[p] = {"step": torch.tensor(float(meta["adam_step"])),
                            "exp_avg": torch.stack(moments[f"{name}.exp_avg"]).to(dev),
                            "exp_avg_sq": torch.stack(moments[f"{name}.exp_avg_sq"]).to(dev)}
    v, s, g = meta["rng"]
    rng.setstate((v, tuple(s), g))
    st = meta["state"]
    return TrainState(step=st["step"], elapsed_s=st["elapsed_s"], losses=st["losses"], pieces=st["pieces"])


def backbone_identity(model_dir: Path) -> dict:
    """What a shipped router is matched against: the GGUF's sha256 (when converted from one) and
    the converted weights' sha256."""
    from msa_agent.model.weights import _sha256

    out: dict = {}
    src = model_dir / "source.json"
    if src.is_file():
        s = json.loads(src.read_text())
        out["gguf"] = Path(s.get("gguf", "")).name
        out["gguf_sha256"] = s.get("sha256")
    w = sorted(model_dir.glob("*.safetensors"))
    if w:
        out["weights_sha256"] = _sha256(w[0])
    return out


def export(out_dir: Path, proj: Projectors, engine, record: dict) -> dict[str, str]:  # noqa: ANN001
    """router.safetensors (fp16 projectors under the model's weight names) and router.json."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ROUTER_FILE
    save_file(proj.state_for_model(engine.cfg.router_layers), str(path), metadata={"format": "pt"})
    record = dict(record, file=ROUTER_FILE, file_sha256=_file_sha(path), file_bytes=path.stat().st_size)
    (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return {"router": str(path), "record": str(out_dir / RECORD_FILE)}


def _file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ---- the whole run -------------------------------------------------------------------------------------


def train_router(cfg: RouterTrainConfig, out_dir: Path, engine, *, checkpoint: Path | None = None,  # noqa: ANN001
                 data: RouterData | None = None, log=print, roots: list[Path] | None = None,  # noqa: ANN001
                 started: float | None = None) -> dict:
    """Make data, cache the backbone's features, train (resuming from `checkpoint`), validate and
    export into `out_dir`. Returns the record written to `out_dir/router.json`. `started`: the
    time.perf_counter() the piece's total budget counts from (default: now)."""
    cfg.check()
    t_all = started if started is not None else time.perf_counter()
    out_dir = Path(out_dir)
    checkpoint = Path(checkpoint) if checkpoint else out_dir / "checkpoint"
    dev = engine.model.embed_tokens.weight.device
    on_gpu = dev.type == "cuda"
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    store_dtype = torch.bfloat16 if on_gpu else torch.float32
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)

    t0 = time.perf_counter()
    if data is None:
        data = make_router_data(cfg.seed, max_files=cfg.max_files, per_package=cfg.per_package,
                                contracts=cfg.contracts, logs=cfg.logs, needles=cfg.needles, roots=roots, log=log)
    train = data.train[: cfg.max_pairs]
    vrng = random.Random(cfg.seed + 1)
    val = vrng.sample(data.val, min(cfg.val_pairs, len(data.val)))
    if not train:
        raise BadInput("no training pairs were made")
    t_data = time.perf_counter() - t0
    log(f"data: {len(data.docs)} documents, {len(train)} training and {len(val)} validation pairs ({t_data:.1f} s)")

    # Only documents that training or validation can see are encoded.
    origin = _origins(data)
    # Validation pool: every positive, then (up to val_pool) half look-alikes from the held-out
    # sources and half distractors from the training sources.
    val_groups = {p.group for p in val}
    train_groups = {p.group for p in train}
    positives = {p.doc for p in val}
    alike = [d for d, doc in enumerate(data.docs) if doc.group in val_groups and d not in positives]
    others = [d for d, doc in enumerate(data.docs) if doc.group not in val_groups and doc.group in train_groups]
    room = max(0, cfg.val_pool - len(positives))
    alike = vrng.sample(alike, min(len(alike), room // 2))
    others = vrng.sample(others, min(len(others), room - len(alike)))
    pool = sorted(positives | set(alike) | set(others))
    needed = sorted({p.doc for p in train} | set(pool) | {d for d, doc in enumerate(data.docs)
                                                          if doc.group in train_groups})
    remap = {d: i for i, d in enumerate(needed)}
    t0 = time.perf_counter()
    doc_h, doc_start, doc_chunks = document_features(engine, [data.docs[d].text for d in needed],
                                                     batch_tokens=cfg.batch_tokens, store_dtype=store_dtype, log=log)
    questions = [p.question for p in train] + [p.question for p in val]
    q_h, q_start, q_len = question_features(engine, questions, max_tokens=cfg.max_question_tokens,
                                            batch_tokens=cfg.batch_tokens // 4, store_dtype=store_dtype, log=log)
    feats = Features(doc_h, doc_start.to(dev), doc_chunks.to(dev), q_h, q_start.to(dev), q_len.to(dev))
    t_backbone = time.perf_counter() - t0
    if on_gpu:
        log(f"feature cache: {(doc_h.numel() + q_h.numel()) * doc_h.element_size() / 1e9:.1f} GB on the GPU")

    # Index space of the cache: documents by `needed` position.
    from .router_data import Pair

    train_m = [Pair(p.question, remap[p.doc], p.group, p.task) for p in train]
    sub = RouterData(docs=[data.docs[d] for d in needed], train=train_m)
    origin_m = [origin[d] for d in needed]
    sampler = Sampler(sub, train_m, cfg, origin_m)
    pair_q = torch.arange(len(train), device=dev)
    pair_doc = torch.tensor([p.doc for p in train_m], device=dev)
    origin_t = torch.tensor(origin_m, device=dev)

    proj = Projectors.from_backbone(engine.model).to(dev)
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    layers = engine.cfg.router_layers
    state = load_checkpoint(checkpoint, proj, opt, cfg, layers, rng) or TrainState()
    resumed_at = state.step
    if resumed_at:
        log(f"resumed from {checkpoint} at step {resumed_at}")
    val_q = list(range(len(train), len(train) + len(val)))
    val_pos = [remap[p.doc] for p in val]
    pool_m = [remap[d] for d in pool]
    t_val = time.perf_counter()
    val_tasks = [p.task for p in val]
    before = validate(proj, feats, val_q, val_pos, pool_m, origin_m, cfg, tasks=val_tasks) if resumed_at == 0 else None
    if before:
        log(f"validation before training (q/k of the backbone): {_fmt(before)}")
    state.pieces += 1

    def ck() -> None:
        save_checkpoint(checkpoint, proj, opt, state, cfg, layers, rng)

    budget = cfg.time_budget_s
    if cfg.total_budget_s is not None:
        # Validation and export after training take about as long as validation before it did.
        reserve = 20.0 + 1.5 * (time.perf_counter() - t_val)
        budget = max(5.0, min(budget, cfg.total_budget_s - (time.perf_counter() - t_all) - reserve))
        log(f"training budget {budget:.0f} s ({time.perf_counter() - t_all:.0f} s used, total {cfg.total_budget_s:.0f} s)")
    deadline = time.perf_counter() + budget
    history: list[dict] = []
    best: dict = {}

    def val() -> dict:
        v = validate(proj, feats, val_q, val_pos, pool_m, origin_m, cfg, tasks=val_tasks)
        history.append({"step": state.step, **{k: v.get(k) for k in ("recall@1", "recall@5", "recall@16", "mrr")}})
        if v and v["mrr"] > best.get("mrr", -1.0):
            best.update(mrr=v["mrr"], step=state.step, metrics=v, wq=proj.wq.detach().clone(), wk=proj.wk.detach().clone())
        log(f"validation at step {state.step}: {_fmt(v)}")
        return v

    t0 = time.perf_counter()
    train_steps(proj, opt, feats, sampler, cfg, state, rng, deadline=deadline, pair_q=pair_q, pair_doc=pair_doc,
                origin=origin_t, log=log, on_checkpoint=ck, on_validate=val if val_q else None)
    t_train = time.perf_counter() - t0
    ck()
    after = val() if val_q else {}
    exported_step = state.step
    if best and best["step"] != state.step:
        # Later steps validated worse (over-fitting the training sources): export the best weights.
        with torch.no_grad():
            proj.wq.copy_(best["wq"])
            proj.wk.copy_(best["wk"])
        after, exported_step = best["metrics"], best["step"]
        log(f"exporting the weights of step {exported_step} (best validation MRR)")
    final = state.losses[-1][1] if state.losses else None
    model_dir = engine.model_dir
    card = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    record = {
        "kind": "router",
        "format": RECORD_FORMAT,
        # The router fits the backbone alone: the memory is encoded without the reader's adapter.
        "backbone": {"name": engine.name, **backbone_identity(model_dir), "adapter": None,
                     "n_layer": engine.cfg.n_layer, "n_embd": engine.cfg.n_embd},
        "msa": {"decouple_router": True, "normalize_router": cfg.cosine, "query_reduce_method": cfg.query_reduce,
                "head_reduce_method": "mean", "chunk_reduce_method": "max",
                "router_layer_idx": ",".join(map(str, layers)),
                "pooling_kernel_size": engine.cfg.msa.pooling_kernel_size},
        "training": {"config": asdict(cfg), "data": data.summary(), "steps": state.step, "pieces": state.pieces,
                     "exported_step": exported_step,
                     "train_seconds": round(state.elapsed_s, 1),
                     "this_piece": {"data_s": round(t_data, 1), "backbone_pass_s": round(t_backbone, 1),
                                    "train_s": round(t_train, 1), "total_s": round(time.perf_counter() - t_all, 1),
                                    "resumed_at_step": resumed_at},
                     "final_loss": final, "loss_curve": state.losses[:: max(1, len(state.losses) // 50)],
                     "card": card, "dtype": str(store_dtype).replace("torch.", ""), "torch": torch.__version__,
                     "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")},
        "validation": {"before": before, "after": after, "history": history,
                       "note": "held-out packages, contract and log files and needle groups, and one question "
                               "template per clause, event and fact kind never trained on (needles: RULER's "
                               "'special magic' wording); pool = their documents plus distractors from "
                               "training sources; hit = the positive's source document"},
    }
    record["outputs"] = export(out_dir, proj, engine, record)
    log(f"wrote {record['outputs']['router']} ({time.perf_counter() - t_all:.0f} s in all)")
    return record


def _fmt(v: dict | None) -> str:
    if not v:
        return "–"
    by = v.get("recall@16_by_task") or {}
    tail = ("; R@16 " + ", ".join(f"{t} {x['recall@16']:.1f} ({x['n']})" for t, x in by.items())) if by else ""
    return (f"R@1 {v['recall@1']:.1f}  R@5 {v['recall@5']:.1f}  R@16 {v['recall@16']:.1f}  MRR {v['mrr']:.3f} "
            f"(n={v['n']}, pool {v['pool']}){tail}")
