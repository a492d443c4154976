"""The batched document tokenizer (what ingest uses) against the one-text-at-a-time reference."""

from __future__ import annotations

import random

from msa_agent.model.tokenizer import Tokenizer


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghij klmnopq\nRSTUV 0123456789 ,.;:()[]{}é€—\t<|>"
    return [""] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(n)]


def test_documents_equal_document_one_by_one(default_tokenizer_dir):
    tok = Tokenizer(default_tokenizer_dir)
    texts = _texts(3, 60)
    assert tok.documents(texts) == [tok.document(t) for t in texts]
    ids = random.Random(4).sample(range(10**6), len(texts))
    assert tok.documents(texts, ids) == [tok.document(t, i) for t, i in zip(texts, ids)]
