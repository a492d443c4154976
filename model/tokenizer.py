"""Tokenizer (HF `tokenizer.json` through the `tokenizers` library) and the ChatML template."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# The reference MSA protocol's round delimiter and end-of-retrieval tokens.
OBJECT_REF_END, END_OF_RETRIEVE = "<|object_ref_end|>", "<End-of-Retrieve>"


class Tokenizer:
    """Encode/decode plus the chat template pieces sparse generation needs."""

    def __init__(self, model_dir: Path) -> None:
        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{model_dir}: no tokenizer.json")
        self._tok = _HFTokenizer.from_file(str(path))
        self.im_start = self._tok.token_to_id(IM_START)
        self.im_end = self._tok.token_to_id(IM_END)
        if self.im_start is None or self.im_end is None:
            raise ValueError(f"{model_dir}: tokenizer has no ChatML tokens; only ChatML models are supported")
        cfg_path = model_dir / "config.json"
        eos = json.loads(cfg_path.read_text()).get("eos_token_id") if cfg_path.is_file() else None
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.stop_ids = {self.im_end, *eos}
        self.object_ref_end = self._tok.token_to_id(OBJECT_REF_END)
        self.end_of_retrieve = self._tok.token_to_id(END_OF_RETRIEVE)

    @property
    def has_retrieval_tokens(self) -> bool:
        """Whether the vocabulary has the reference protocol's delimiter tokens."""
        return self.object_ref_end is not None and self.end_of_retrieve is not None

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def digest_text(self) -> str:
        return self._tok.to_str()

    # ---- templates -------------------------------------------------------------------------

    def document(self, text: str, doc_id: int | None = None) -> list[int]:
        """A memory document as encoded: its own ChatML turn, positions from 0. With an id, the
        reference protocol's form `<|im_start|>[id]. text[id]<|im_end|>`, so that a model trained
        for it can read ids out of compressed memory and generate them."""
        if doc_id is not None:
            return self.encode(f"{IM_START}[{doc_id}]. {text}[{doc_id}]{IM_END}")
        return self.encode(f"{IM_START}document\n{text}{IM_END}\n")

    def documents(self, texts: list[str], doc_ids: list[int] | None = None) -> list[list[int]]:
        """`document` for many texts in one call: the tokenizer works through them on all cores."""
        if doc_ids is not None:
            forms = [f"{IM_START}[{i}]. {t}[{i}]{IM_END}" for t, i in zip(texts, doc_ids, strict=True)]
        else:
            forms = [f"{IM_START}document\n{t}{IM_END}\n" for t in texts]
        return self.encode_batch(forms)

    def chat_prefix(self, system: str) -> list[int]:
        """The template prefix that precedes the memory slots: system turn and the user header."""
        return self.encode(f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n")

    def chat_prompt(self, user: str) -> list[int]:
        """The user's turn after the memory slots, closed, then the assistant header."""
        return self.encode(f"{user}{IM_END}\n{IM_START}assistant\n")
