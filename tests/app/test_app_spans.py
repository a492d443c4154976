"""Extractive spans: what a question asks for, the spans cut from the evidence, and the batched
span scorer against one-token-at-a-time decoding on a random model."""

from __future__ import annotations

import math

import pytest
import torch

from msa_agent.focus import focus
from msa_agent.model.model import KVCache
from msa_agent.spans import answer_type, candidates, score_spans
from msa_agent.model.config import Config, MSAConfig
from msa_agent.model.model import MSAModel


@pytest.mark.parametrize(("question", "kind"), [
    ("Which version of kubectl was installed in June?", "version"),
    ("Which CVE covers the recursion fix?", "cve"),
    ("To which email address are violations reported?", "email"),
    ("When did the apt run finish?", "datetime"),
    ("How many members can the committee have?", "number"),
    ("What priority did ed give itself?", "number"),
    ("Which exception does the wrapper raise to retry?", "ident"),
    ("Who founded the project?", None),
])
def test_answer_type_reads_the_question(question: str, kind: str | None) -> None:
    assert answer_type(question) == kind


def _enc(s: str) -> list[int]:
    return [0] * (len(s) // 4 + 1)


def test_candidates_are_spans_of_the_asked_kind_from_the_best_lines() -> None:
    text = ("Start-Date: 2025-06-24  14:42:05\n"
            "Install: kubectl:amd64 (1:528.0.0-0), libc6:amd64 (2.36-9+deb12u10)\n"
            "End-Date: 2025-06-24  14:42:30\n"
            "unrelated line about nothing\n")
    f = focus([("logs/apt.log", "lines 1-4", text)], "Which version of kubectl was installed?", 400, _enc)
    spans = [s.text for s in candidates(f, "version")]
    assert "1:528.0.0-0" in spans and "2.36-9+deb12u10" in spans
    assert all(s in text for s in spans)  # verbatim evidence


def test_candidates_without_a_kind_skip_question_words() -> None:
    text = "The Technical Committee may have up to eight members.\nOther text."
    f = focus([("c.txt", "line 1", text)], "Who sits on the Technical Committee?", 400, _enc)
    spans = [s.text for s in candidates(f, None)]
    assert "eight members" in spans
    assert "Technical Committee" not in spans  # only repeats the question


def _random_model() -> MSAModel:
    cfg = Config(arch="llama", vocab_size=128, n_layer=3, n_embd=64, n_head=4, n_kv_head=2, head_dim=0,
                 intermediate_size=96, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                 max_position_embeddings=256, msa=MSAConfig(router_layer_idx="1,2", pooling_kernel_size=4, top_k_docs=2))
    torch.manual_seed(5)
    model = MSAModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


def test_batched_span_scores_equal_token_by_token_decoding() -> None:
    model = _random_model()
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


def test_a_value_written_in_part_is_completed_from_the_best_line_holding_it() -> None:
    from msa_agent.reader import complete_span

    log = ("2026-09-22 04:45:53 install osslsigncode:amd64 <none> 2.5-1\n"
           "2026-09-22 04:45:54 status half-installed osslsigncode:amd64 2.5-1\n")
    f = focus([("dpkg.log", "lines 1-2", log)], "At what time was the osslsigncode package installed?", 400, _enc)
    assert complete_span("2026-09-22", f) == "2026-09-22 04:45:53"
    assert complete_span("2026-09-22 04:45:53", f) is None  # already whole
    apt = "Upgrade: libc6:amd64 (2.36-9+deb12u10, 2.36-9+deb12u14)\n"
    f = focus([("history.log", "line 1", apt)], "Which version was libc6 upgraded to?", 400, _enc)
    assert complete_span("2.36-9", f) is None  # two versions hold it: not ours to choose
    f = focus([("c.txt", "line 1", "The committee has eight members.\n")], "Who founded the committee?", 400, _enc)
    assert complete_span("eight", f) is None  # the question asks for no kind of span
