"""The reader's fine-tuning on the tiny model: adapters train (loss on answer tokens only, falling
on a fixed batch), export, merge at load time equal to the unmerged forward, change the
fingerprint, are picked up by backbone identity; the memory path trains; the data holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from msa_agent.model.lora import LoRALinear, add_lora, backbone_id, find_adapter, save_adapter
from msa_agent.model.tokenizer import Tokenizer
from msa_agent.model.weights import fingerprint, load_model
from msa_agent.reading import ABSTAIN
from msa_agent.train.reader import (ReaderTrainConfig, adapters_off, answer_loss, batches, memory_loss, text_batch,
                                    tokenize, train_reader)
from msa_agent.train.reader_data import Mix, make_examples


@pytest.fixture(scope="module")
def examples() -> list:
    return make_examples(60, 0, "train", Mix(), max_code_files=40)


def _model(tiny_model_dir: Path):
    return load_model(tiny_model_dir, dtype=torch.float32)


def test_data_answers_are_evidence_spans(examples: list) -> None:
    assert len(examples) == 60
    assert {e.domain for e in examples} == {"contracts", "code", "logs"}
    wider = make_examples(60, 0, "train", Mix.parse("contracts=0.3,code=0.3,two_hop=0.15,lists=0.15"), max_code_files=40)
    assert {e.domain for e in wider} == {"contracts", "code", "logs", "two-hop", "lists"}
    examples = examples + wider
    for e in examples:
        if e.answerable and e.domain == "lists":  # every value listed, each a span of the register
            values = [v for part in e.answer.split("; ") for v in part.split(": ")[-1].split(", ")]
            assert values and all(v in e.docs[e.gold].text for v in values)
        elif e.answerable:
            assert e.answer in e.docs[e.gold].text and e.answer != ABSTAIN
        else:
            assert e.answer == ABSTAIN
    assert any(not e.answerable for e in examples)
    again = make_examples(60, 0, "train", Mix(), max_code_files=40)
    assert [e.question for e in again] == [e.question for e in examples[:60]]  # deterministic by seed
    with pytest.raises(ValueError, match="unknown domain"):
        Mix.parse("contract=0.5")


def test_loss_is_on_answer_tokens_only(tiny_model_dir: Path, examples: list) -> None:
    tok = Tokenizer(tiny_model_dir)
    items = tokenize(tok, examples[:3], 4096)
    ids, pos, tgt = text_batch(items, 4, torch.device("cpu"))
    for b, it in enumerate(items):
        got = tgt[b][tgt[b] != -100].tolist()
        assert got == it.answer and got[-1] == tok.im_end
        n = len(it)
        # The gap after the template prefix (where memory slots sit) shows in the positions.
        assert pos[b, len(it.prefix)] == len(it.prefix) + 4 and pos[b, n - 1] == n - 1 + 4


def test_loss_falls_on_a_fixed_batch(tiny_model_dir: Path, examples: list) -> None:
    tok = Tokenizer(tiny_model_dir)
    model = _model(tiny_model_dir)
    params = add_lora(model, rank=8, alpha=16)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    opt = torch.optim.AdamW(params, lr=3e-2)
    ids, pos, tgt = text_batch(tokenize(tok, examples[:4], 4096), 0, torch.device("cpu"))
    losses = []
    for _ in range(10):
        loss = answer_loss(model, model.hidden(ids, pos), tgt)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    # The tiny random model's final norm weights are ~0.05, which damps any change to its logits:
    # the fall is small but steady.
    assert losses[-1] < losses[0] - 0.02 and losses[-1] == min(losses[-3:])


def test_memory_path_step_runs_and_has_gradients(tiny_model_dir: Path, examples: list) -> None:
    tok = Tokenizer(tiny_model_dir)
    model = _model(tiny_model_dir)
    add_lora(model, rank=4, alpha=8)
    it = tokenize(tok, examples[:1], 4096)[0]
    loss = memory_loss(model, tok, it)
    loss.backward()
    grads = [m.lora_b.grad for m in model.modules() if isinstance(m, LoRALinear)]
    assert torch.isfinite(loss) and all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def _trained_adapter(model, scale_b: float = 0.05) -> None:  # noqa: ANN001
    torch.manual_seed(3)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            torch.nn.init.normal_(m.lora_b, std=scale_b)


def test_merged_adapter_equals_unmerged_forward(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _model(tiny_model_dir)
    add_lora(model, rank=4, alpha=8)
    _trained_adapter(model)
    path = save_adapter(model, tmp_path / "a.safetensors", dtype=torch.float32, record={"backbone": "x"})
    ids = torch.randint(0, 49152, (2, 17))
    with torch.no_grad():
        want = model(ids)
        with adapters_off(model):
            base = model(ids)
    merged = load_model(tiny_model_dir, dtype=torch.float32, adapter_file=path)
    with torch.no_grad():
        got = merged(ids)
    assert not torch.allclose(want, base, atol=1e-3)  # the adapter does something
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_adapter_file_is_small_and_leaves_the_memory_alone(tiny_model_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader adapter is applied when reading, never when encoding: the fingerprint and the
    encoded memory are those of the backbone alone, and only the reader's answers change."""
    from msa_agent.engine import Engine

    model = _model(tiny_model_dir)
    add_lora(model, rank=16, alpha=32)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    path = save_adapter(model, tmp_path / "r.safetensors", record={"backbone": backbone_id(tiny_model_dir)})
    rec = json.loads(path.with_suffix(".json").read_text())
    assert rec["rank"] == 16 and rec["kind"] == "reader-lora"
    monkeypatch.setenv("MSA_ADAPTER", "none")
    plain = Engine.load(str(tiny_model_dir), dtype="float32", purpose="generate")
    monkeypatch.setenv("MSA_ADAPTER", str(path))
    tuned = Engine.load(str(tiny_model_dir), dtype="float32", purpose="generate")
    assert tuned.fingerprint == plain.fingerprint and tuned.adapter == "r.safetensors"
    docs = [torch.randint(0, tuned.cfg.vocab_size, (n,), generator=g).tolist() for n in (37, 80)]
    a, b = plain.model.encode(docs), tuned.model.encode(docs)
    for layer in a.k:
        torch.testing.assert_close(a.k[layer], b.k[layer])
        torch.testing.assert_close(a.v[layer], b.v[layer])
    ids = torch.randint(0, tuned.cfg.vocab_size, (1, 20), generator=g)
    with torch.no_grad():
        assert not torch.allclose(plain.answerer(ids), tuned.answerer(ids), atol=1e-3)  # the reader reads differently
        torch.testing.assert_close(plain.answerer(ids), tuned.model(ids))


def test_adapter_is_found_by_backbone_identity(tiny_model_dir: Path, other_tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _model(tiny_model_dir)
    add_lora(model, rank=2, alpha=4)
    shipped = tmp_path / "trained"
    save_adapter(model, shipped / "reader.safetensors", record={"backbone": backbone_id(tiny_model_dir)})
    assert find_adapter(tiny_model_dir, shipped) == shipped / "reader.safetensors"
    assert find_adapter(other_tiny_model_dir, shipped) is None  # another model gets none
    assert find_adapter(tiny_model_dir, tmp_path / "nothing") is None


def test_engine_picks_up_adapter_and_msa_adapter_none(tiny_model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from msa_agent import engine as engine_mod
    from msa_agent.model import lora

    model = _model(tiny_model_dir)
    add_lora(model, rank=2, alpha=4)
    _trained_adapter(model)
    shipped = tmp_path / "trained"
    save_adapter(model, shipped / "reader.safetensors", record={"backbone": backbone_id(tiny_model_dir)})
    monkeypatch.setattr(lora, "TRAINED_DIR", shipped)
    monkeypatch.setattr(lora.find_adapter, "__defaults__", (shipped,))
    e = engine_mod.Engine.load(str(tiny_model_dir), dtype="float32")
    assert e.adapter == "reader.safetensors" and "adapter" not in e.manifest_info()
    monkeypatch.setenv("MSA_ADAPTER", "none")
    plain = engine_mod.Engine.load(str(tiny_model_dir), dtype="float32")
    assert plain.adapter is None and plain.fingerprint == e.fingerprint  # the memory does not depend on the reader


def test_train_reader_end_to_end_tiny(tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = Tokenizer(tiny_model_dir)
    model = _model(tiny_model_dir)
    cfg = ReaderTrainConfig(examples=40, val_per_domain=2, batch_tokens=2048, max_steps=3, mem_every=2, mem_batch=1,
                            max_code_files=30, max_new_tokens=4, log_every=1, warmup=1)
    logs: list[str] = []
    rec = train_reader(model, tok, cfg, tmp_path, model_dir=tiny_model_dir, log=logs.append)
    path = tmp_path / "reader-smollm2-135m.safetensors"
    assert path.is_file() and rec["steps"] == 3 and rec["final_memory_loss"] is not None
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved["backbone"] == backbone_id(tiny_model_dir) and "validation" in saved
    assert {"base/text/contracts", "tuned/memory/logs"} <= set(saved["validation"])
    assert load_model(tiny_model_dir, adapter_file=path) is not None


def test_batches_respect_the_token_budget(tiny_model_dir: Path, examples: list) -> None:
    import random

    tok = Tokenizer(tiny_model_dir)
    items = tokenize(tok, examples, 4096)
    plan = batches(items, 4096, random.Random(0))
    assert sum(len(b) for b in plan) == len(items)
    assert all(len(b) == 1 or max(len(i) for i in b) * len(b) <= 4096 for b in plan)


# ---- fast paths against the reference paths ----------------------------------------------------


def test_indexed_answer_loss_equals_masked(tiny_model_dir: Path, examples: list) -> None:
    from msa_agent.train.reader import prepare_text

    tok = Tokenizer(tiny_model_dir)
    model = _model(tiny_model_dir)
    tb = prepare_text(tokenize(tok, examples[:5], 4096), 4)
    with torch.no_grad():
        h = model.hidden(tb.ids, tb.pos)
        want = answer_loss(model, h, tb.tgt)
        got = answer_loss(model, h, tb.tgt, tb.idx, tb.labels)
    assert torch.equal(tb.labels, tb.tgt[tb.tgt != -100])
    torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_lora_forward_matches_the_fp32_reference() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(24, 40, bias=False)
    m = LoRALinear(lin, 4, 8)
    torch.nn.init.normal_(m.lora_b, std=0.1)
    x = torch.randn(3, 5, 24)
    ref = lin(x) + ((x @ m.lora_a.T) @ m.lora_b.T) * m.scale
    torch.testing.assert_close(m(x), ref, atol=1e-6, rtol=1e-6)
    # bf16: the low-rank product in bf16 (as autocast would), within bf16 rounding of the reference.
    mb = LoRALinear(torch.nn.Linear(24, 40, bias=False).to(torch.bfloat16), 4, 8)
    mb.base.weight.data.copy_(lin.weight.data)
    mb.lora_a.data.copy_(m.lora_a.data)
    mb.lora_b.data.copy_(m.lora_b.data)
    xb = x.to(torch.bfloat16)
    ref_b = mb.base(xb).float() + ((xb.float() @ m.lora_a.T) @ m.lora_b.T) * m.scale
    torch.testing.assert_close(mb(xb).float(), ref_b, atol=3e-2, rtol=3e-2)
    mb(xb).float().sum().backward()
    assert mb.lora_a.grad is not None and mb.lora_a.grad.dtype == torch.float32


def test_batched_memory_loss_equals_the_per_example_path(tiny_model_dir: Path, examples: list) -> None:
    from msa_agent.train.reader import memory_batch_loss

    tok = Tokenizer(tiny_model_dir)
    model = _model(tiny_model_dir)
    params = add_lora(model, rank=4, alpha=8)
    _trained_adapter(model)
    items = tokenize(tok, examples[:4], 4096)
    want = sum(memory_loss(model, tok, it) for it in items) / len(items)
    want.backward()
    g_want = [p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)
    got = memory_batch_loss(model, tok, items)
    got.backward()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for a, b in zip((p.grad for p in params), g_want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_merged_validation_model_equals_the_adapted_forward(tiny_model_dir: Path) -> None:
    from msa_agent.model.lora import merged

    model = _model(tiny_model_dir)
    add_lora(model, rank=4, alpha=8)
    _trained_adapter(model)
    ids = torch.randint(0, 49152, (2, 11))
    with torch.no_grad():
        want = model(ids)
        with adapters_off(model):
            base = model(ids)
        with merged(model):
            got = model(ids)
            assert not any(isinstance(m, LoRALinear) for m in model.modules())
        with merged(model, base_only=True):
            got_base = model(ids)
        again = model(ids)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_base, base, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, want, atol=0, rtol=0)  # the adapters are back
    assert model.layers[0].self_attn.w_qkv is None


def test_validation_sets_hold_unanswerable_questions_in_every_domain() -> None:
    from msa_agent.train.reader import Item, pick_validation

    ex = make_examples(240, 1, "val", Mix(), max_code_files=300)
    items = [Item([], [], [], e) for e in ex]
    val = pick_validation(items, 12, 0.25)
    for d in ("contracts", "code", "logs"):
        assert len(val[d]) == 12
        assert sum(not it.ex.answerable for it in val[d]) == 3, d


def test_training_data_has_hard_negatives_in_every_domain() -> None:
    # three seeds pooled: the code facts come from whatever site-packages holds, and one sample of
    # 300 files can fall short of the share by chance when the installed packages change
    ex = [e for seed in (0, 1, 2) for e in make_examples(400, seed, "train", Mix(), max_code_files=300)]
    for d in ("contracts", "code", "logs"):
        dom = [e for e in ex if e.domain == d]
        share = sum(not e.answerable for e in dom) / len(dom)
        assert (0.05 if d == "code" else 0.06) <= share <= 0.25, (d, share)  # code: ~6.7% with today's packages
    kinds = {e.kind for e in ex if not e.answerable}
    assert {"raise_removed", "cut_function", "absent_param"} & kinds and {"other_sensor_time", "not_replaced"} & kinds
    for e in ex:  # code distractors come from other files
        if e.domain == "code" and len(e.docs) > 1:
            main = e.docs[e.gold] if e.answerable else e.docs[0]
            assert sum(d.path == main.path for d in e.docs) == 1 or not e.answerable


def test_composed_questions_need_the_bridge_and_every_value() -> None:
    import random

    from msa_agent.train.reader_data import list_examples, two_hop_examples

    rng = random.Random(5)
    for e in two_hop_examples(rng, 40, "train"):
        if not e.answerable:
            continue
        bridge = e.docs[e.gold].text.splitlines()[0]
        name = bridge.split(": ")[-1].removeprefix("# ").split(" - ")[0]
        assert name not in e.question  # the question names the subject and the relation only
        assert any(name in d.text for i, d in enumerate(e.docs) if i != e.gold)  # a note links to it
    for e in list_examples(rng, 40, "train"):
        if e.answerable and ";" not in e.answer:
            values = e.answer.split(", ")
            lines = e.docs[e.gold].text.splitlines()
            at = [next(i for i, ln in enumerate(lines) if ln.endswith(f" {v}.")) for v in values]
            assert at == sorted(at)  # document order


def test_load_lora_restores_a_saved_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    from msa_agent.model.lora import load_lora, lora_state

    model = _model(tiny_model_dir)
    add_lora(model, rank=4, alpha=8)
    _trained_adapter(model)
    path = save_adapter(model, tmp_path / "a.safetensors", dtype=torch.float32)
    again = _model(tiny_model_dir)
    add_lora(again, rank=4, alpha=8, seed=9)
    load_lora(again, path, 4, 8)
    want, got = lora_state(model), lora_state(again)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    other = _model(tiny_model_dir)
    add_lora(other, rank=2, alpha=4)
    with pytest.raises(ValueError, match="right shape"):
        load_lora(other, path, 2, 4)


def test_focused_examples_keep_their_answer_and_look_like_what_ask_shows() -> None:
    """`Mix.focused`: part of the evidence laid out as `ask`'s focused reader sees it (the
    matching lines, "…" between); the answer span is still in the supporting document."""
    from msa_agent.train.reader_data import as_focused

    mix = Mix.parse("focused=1.0")
    assert mix.focused == 1.0
    exs = make_examples(120, 5, "train", mix, max_code_files=200)
    elided = [e for e in exs if any("…" in d.text for d in e.docs)]
    assert len(elided) > len(exs) // 4
    for e in exs:
        if e.answerable:
            assert e.answer in e.docs[e.gold].text
    plain = make_examples(60, 5, "train", Mix(), max_code_files=200)
    for e in plain[:20]:
        f = as_focused(e)
        assert f.question == e.question and f.answer == e.answer
        if f.answerable:
            assert f.answer in f.docs[f.gold].text
