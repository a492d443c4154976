"""The router's training: its scores are routing's scores, its loss learns, and a run on the tiny
model checkpoints, resumes, exports a file the model loads, and is picked up for its backbone only."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch

from msa_agent.kernels.routing import chunk_scores, doc_scores
from msa_agent.model.losses import batched_doc_scores, contrastive_routing_loss


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("query_reduce", ["max", "mean", "last"])
@pytest.mark.parametrize("head_reduce", ["mean", "max"])
@pytest.mark.parametrize("cosine", [True, False])
def test_batched_scores_are_routing_scores(query_reduce: str, head_reduce: str, cosine: bool) -> None:
    g = torch.Generator().manual_seed(0)
    B, S, H, Hk, D, M, C = 3, 7, 6, 2, 8, 5, 4
    q = torch.randn(B, S, H, D, generator=g)
    q_len = torch.tensor([7, 3, 1])
    q_mask = torch.arange(S)[None] < q_len[:, None]
    n_chunks = torch.tensor([4, 1, 2, 3, 1])
    keys = torch.randn(M, C, Hk, D, generator=g)
    k_mask = torch.arange(C)[None] < n_chunks[:, None]
    got = batched_doc_scores(q, q_mask, keys, k_mask, head_reduce=head_reduce, query_reduce=query_reduce,
                             cosine=cosine)  # (B, M)
    flat = keys[k_mask]  # (N, Hk, D) in document order
    chunk_doc = torch.repeat_interleave(torch.arange(M), n_chunks)
    for b in range(B):
        qb = q[b, : int(q_len[b])].permute(1, 0, 2)  # (H, S_b, D)
        cs = chunk_scores(qb, flat, head_reduce=head_reduce, query_reduce=query_reduce, cosine=cosine)
        want = doc_scores(cs, chunk_doc, M, "max")
        torch.testing.assert_close(got[b], want, rtol=1e-5, atol=1e-5)


def test_loss_is_eq5() -> None:
    s = torch.tensor([[0.9, 0.1, 0.8, 0.2]])
    pos = torch.tensor([[True, False, True, False]])
    tau = 0.1
    z = s[0] / tau
    neg = torch.logsumexp(z[[1, 3]], 0)
    want = -0.5 * sum(z[i] - torch.logaddexp(z[i], neg) for i in (0, 2))
    torch.testing.assert_close(contrastive_routing_loss(s, pos, tau), want)
    # A candidate marked invalid counts neither way.
    valid = torch.tensor([[True, False, True, True]])
    neg2 = z[3]
    want2 = -0.5 * sum(z[i] - torch.logaddexp(z[i], neg2) for i in (0, 2))
    torch.testing.assert_close(contrastive_routing_loss(s, pos, tau, valid), want2)


def test_projectors_learn_a_fixed_batch() -> None:
    from msa_agent.train.router import Projectors

    g = torch.Generator().manual_seed(1)
    L, X, H, Hk, D, B, S, C = 2, 32, 4, 2, 8, 8, 5, 3
    proj = Projectors(torch.randn(L, H * D, X, generator=g) * 0.1, torch.randn(L, Hk * D, X, generator=g) * 0.1, H, Hk)
    hq = torch.randn(L, B, S, X, generator=g)
    hd = torch.randn(L, B, C, X, generator=g)
    qm = torch.ones(B, S, dtype=torch.bool)
    km = torch.ones(B, C, dtype=torch.bool)
    pos = torch.eye(B, dtype=torch.bool)
    opt = torch.optim.AdamW(proj.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        s = batched_doc_scores(proj.queries(hq, slice(0, L)), qm, proj.keys(hd, slice(0, L)), km)
        loss = contrastive_routing_loss(s, pos, 0.1)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def _tiny_data(tmp_path: Path, seed: int = 0):  # noqa: ANN202
    from msa_agent.train.router_data import make_router_data

    site = tmp_path / "site-packages"
    for pkg in ("alpha", "beta"):
        d = site / pkg
        d.mkdir(parents=True)
        (d / "__init__.py").write_text("")
        body = []
        for i in range(3):
            body.append(f'''
def {pkg}_handler_{i}(value, limit={i * 7}):
    """Compute the {pkg} score of a reading number {i} and clamp it to the limit."""
    # keep the reading inside its range before scaling it up
    if value > limit:
        raise ValueError("the reading exceeds the configured limit for {pkg}")
    return value * {i + 2}
''')
        (d / "core.py").write_text("\n".join(body))
    # Prose for needles: a text document of the package, and one of numpy (the evaluation haystack's
    # prose package), which needles must never take filler from.
    (site / "alpha" / "GUIDE.md").write_text("# Guide\n\n" + " ".join(
        f"The alpha reader keeps weather report number {w} safe until the morning shift arrives." for w in
        ("one", "two", "three", "four", "five", "six", "seven", "eight")) + "\n")
    (site / "numpy").mkdir()
    (site / "numpy" / "NOTES.md").write_text("# Notes\n\n" + " ".join(
        f"The haystack paragraph about arrays and dtypes is sentence {w} of many." for w in
        ("one", "two", "three", "four", "five", "six", "seven", "eight")) + "\n")
    return make_router_data(seed, roots=[site], contracts=4, logs=2, needles=48, workers=1, val_fraction=0.3,
                            log=lambda m: None)


def test_router_data_is_seeded_and_keeps_out_licences(tmp_path: Path) -> None:
    a = _tiny_data(tmp_path / "a")
    b = _tiny_data(tmp_path / "b")
    assert [p.question for p in a.train] == [p.question for p in b.train]
    assert a.train and a.val
    tasks = {p.task.split("_")[0] for p in a.train + a.val}
    assert {"contract", "log"} <= tasks
    assert tasks & {"docstring", "name", "raise", "cloze"}
    from msa_agent.train.router_data import _EXCLUDED_NAME

    assert _EXCLUDED_NAME.search("LICENSE.txt") and _EXCLUDED_NAME.search("copyright")


def test_router_data_needles_name_a_key_inside_unrelated_prose(tmp_path: Path) -> None:
    """Needle pairs: one fact sentence with a rare key in filler prose, the question names the key;
    a group shares its fact wording (negatives differ in the key only); validation groups use
    RULER's wording, which training never sees; no filler from the evaluation haystack's packages."""
    from msa_agent.train.router_data import FACTS

    data = _tiny_data(tmp_path)
    train = [p for p in data.train if p.task == "needle"]
    val = [p for p in data.val if p.task == "needle"]
    assert train and val
    assert all("special magic" not in p.question for p in train)
    assert all("special magic" in p.question for p in val)
    assert all("special magic" not in data.docs[p.doc].text for p in train)
    wording: dict[str, set[int]] = {}
    for p in train + val:
        doc = data.docs[p.doc]
        assert doc.group == p.group and doc.group.startswith("needles/")
        assert "haystack paragraph" not in doc.text  # numpy's prose: the evaluation haystack's
        assert 1000 <= len(doc.text) <= 3200
        # The question names the key of a fact sentence of its group's wording in the document.
        keys, kinds = [], set()
        for i, (fact, _) in enumerate(FACTS):
            pat = re.escape(fact).replace(re.escape("{key}"), r"([^.]+?)").replace(re.escape("{value}"), r"[^ ]+?")
            found = re.findall(pat.replace(re.escape("{kind}"), r"\w+"), doc.text)
            keys += found
            kinds |= {i} if found else set()
        assert keys and any(k in p.question for k in keys), (p.question, keys)
        wording[p.group] = wording.get(p.group, kinds) & kinds
    assert all(wording.values())  # one fact wording per group
    assert len({data.docs[p.doc].text for p in train}) == len(train)
    assert "the alpha reader keeps weather report" in " ".join(data.docs[p.doc].text.lower() for p in train)


def test_train_router_tiny_end_to_end(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msa_agent.engine import Engine
    from msa_agent.model.weights import load_model, router_msa_config, shipped_router
    from msa_agent.train.router import RouterTrainConfig, document_features, train_router

    data = _tiny_data(tmp_path)
    engine = Engine.load(str(tiny_model_dir), dtype="float32", router="none")
    cfg = RouterTrainConfig(steps=6, batch=16, warmup=2, time_budget_s=60, val_pairs=20, val_pool=60,
                            batch_tokens=4096, fit_schedule=False, validate_every_s=0.0)
    out = tmp_path / "out"
    rec = train_router(cfg, out, engine, data=data, log=lambda m: None)
    assert rec["kind"] == "router" and rec["training"]["steps"] == 6
    assert rec["validation"]["after"]["n"] > 0
    # Validated as it trains; the exported weights are the best validated ones.
    hist = rec["validation"]["history"]
    assert len(hist) >= 6
    best = max(hist, key=lambda h: h["mrr"])
    by_task = rec["validation"]["after"]["recall@16_by_task"]
    assert by_task["needle"]["n"] > 0 and sum(x["n"] for x in by_task.values()) == rec["validation"]["after"]["n"]
    assert rec["training"]["data"]["train_tasks"]["needle"] > 0
    assert rec["validation"]["after"]["mrr"] == best["mrr"] and rec["training"]["exported_step"] >= 1
    files = sorted((out / "checkpoint").glob("layer-*.safetensors"))
    assert len(files) == len(engine.cfg.router_layers)
    assert max(f.stat().st_size for f in files) < 16e6 and (out / "router.safetensors").stat().st_size < 16e6

    # Resume: the next piece starts where the checkpoint stopped.
    cfg2 = RouterTrainConfig(steps=9, batch=16, warmup=2, time_budget_s=60, val_pairs=20, val_pool=60,
                             batch_tokens=4096, fit_schedule=False)
    rec2 = train_router(cfg2, out, engine, data=data, log=lambda m: None)
    assert rec2["training"]["this_piece"]["resumed_at_step"] == 6 and rec2["training"]["steps"] == 9
    assert rec2["training"]["pieces"] == 2

    # The exported file loads into the model, and the model's routing keys are the projector
    # applied to the chunk means the trainer cached (the efficiency trick is exact).
    router_file = out / "router.safetensors"
    msa = router_msa_config(tiny_model_dir, router_file)
    assert msa.decouple_router and msa.cosine and msa.query_reduce_method == rec2["msa"]["query_reduce_method"]
    model = load_model(tiny_model_dir, msa=msa, router_file=router_file)
    texts = [d.text for d in data.docs[:3]]
    toks = engine.doc_tokens(texts)
    enc = model.encode(toks)
    h, _, _ = document_features(engine, texts, batch_tokens=4096, store_dtype=torch.float32)
    from safetensors.torch import load_file

    w = load_file(str(router_file))
    for li, layer in enumerate(engine.cfg.router_layers):
        wk = w[f"model.layers.{layer}.self_attn.router_k_proj.0.weight"].float()
        want = (h[li] @ wk.T).view(-1, engine.cfg.n_kv_head, engine.cfg.head_dim)
        torch.testing.assert_close(enc.rk[layer], want, rtol=2e-3, atol=2e-3)

    # Picked up only for the backbone it was trained for; MSA_ROUTER overrides.
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "router-tiny.safetensors").write_bytes(router_file.read_bytes())
    rec_json = json.loads((out / "router.json").read_text())
    rec_json["file"] = "router-tiny.safetensors"
    (trained / "router-tiny.json").write_text(json.dumps(rec_json))
    cache = tmp_path / "cache"
    assert shipped_router(tiny_model_dir, cache, trained) == trained / "router-tiny.safetensors"
    rec_json["backbone"]["weights_sha256"] = "0" * 64
    (trained / "router-tiny.json").write_text(json.dumps(rec_json))
    assert shipped_router(tiny_model_dir, cache, trained) is None
    monkeypatch.setenv("MSA_ROUTER", str(router_file))
    e2 = Engine.load(str(tiny_model_dir), dtype="float32")
    assert e2.cfg.msa.decouple_router and e2.fingerprint != engine.fingerprint
    monkeypatch.setenv("MSA_ROUTER", "none")
    assert not Engine.load(str(tiny_model_dir), dtype="float32").cfg.msa.decouple_router


@pytest.mark.slow
@pytest.mark.real_model
def test_real_backbone_trains_a_few_steps_on_cpu(tmp_path: Path) -> None:
    from msa_agent.engine import Engine
    from msa_agent.train.router import RouterTrainConfig, train_router
    from msa_agent.train.router_data import RouterData

    data = _tiny_data(tmp_path)
    rng = random.Random(0)
    keep = rng.sample(data.train, 12)
    used = sorted({p.doc for p in keep + data.val[:4]})
    small = RouterData(docs=data.docs, train=keep, val=data.val[:4])
    assert used
    engine = Engine.load(None, dtype="bfloat16", router="none")
    cfg = RouterTrainConfig(steps=2, batch=8, warmup=1, time_budget_s=60, val_pairs=4, val_pool=16,
                            batch_tokens=4096, fit_schedule=False)
    rec = train_router(cfg, tmp_path / "out", engine, data=small, log=lambda m: None)
    assert rec["training"]["steps"] == 2 and rec["training"]["final_loss"] is not None
    assert (tmp_path / "out" / "router.safetensors").stat().st_size < 16e6


def test_cli_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from msa_agent.cli.main import app

    r = CliRunner().invoke(app, ["train", "router", "--out", str(tmp_path), "--query-reduce", "median"])
    assert r.exit_code == 1 and "max or mean" in r.output and "Traceback" not in r.output
