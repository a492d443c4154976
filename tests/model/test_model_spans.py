"""The batched span scorer (`msa_agent.spans.score_spans`) against one-token-at-a-time decoding
on a random model."""

from __future__ import annotations

import math

import torch

from msa_agent.model.model import KVCache
from msa_agent.spans import score_spans


def test_batched_span_scores_equal_token_by_token_decoding(make_model) -> None:  # noqa: ANN001
    model = make_model(seed=5)
    torch.manual_seed(3)
    prompt = torch.randint(1, 128, (11,)).tolist()
    logits, cache, pos = model.prefill([], prompt, None)
    spans = [torch.randint(1, 128, (n,)).tolist() for n in (1, 3, 5, 2)]
    stop = 7
    got = score_spans(model, logits, cache, pos, spans, stop, batch=3)
    for span, g in zip(spans, got, strict=True):
        # the plain reference: feed one token at a time on a fresh copy of the prompt's cache
        c = KVCache(len(cache.k))
        c.k, c.v = list(cache.k), list(cache.v)
        lg, p, want = logits, pos, 0.0
        for t in span + [stop]:
            want += float(torch.log_softmax(lg.float(), -1)[t])
            lg = model.feed([t], c, p)
            p += 1
        assert math.isclose(g, want, rel_tol=1e-4, abs_tol=1e-4)
    # the prompt's cache is read, never changed
    assert all(k.shape[2] == len(prompt) for k in cache.k)
