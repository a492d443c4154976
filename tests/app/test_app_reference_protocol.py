"""The reference MSA checkpoint format (model_type "msa", Qwen3 geometry, decoupled router
projectors, the retrieval tokens) and its interleave protocol, on tiny random checkpoints with
scripted generations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer as HFTokenizer
from typer.testing import CliRunner

from msa_agent.ask import Router, ask, route
from msa_agent.engine import Engine
from msa_agent.errors import FingerprintMismatch
from msa_agent.interleave import ANSWER_PROMPT, FIRST_PROMPT, ask_reference, parse_ids
from msa_agent.model.config import Config, MSAConfig
from msa_agent.model.model import MSAModel
from msa_agent.pipeline import ingest_dir
from msa_agent.store import Store

SPECIAL = ["<|object_ref_end|>", "<End-of-Retrieve>"]


def write_reference_checkpoint(out: Path, tokenizer_dir: Path, seed: int) -> Path:
    """A tiny checkpoint laid out like EverMind-AI/MSA-4B: config.json with model_type "msa" and
    msa_config, router_q_proj.0 / router_k_proj.0 weights in the router layers, and a tokenizer
    with the retrieval tokens."""
    out.mkdir(parents=True, exist_ok=True)
    tok = HFTokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    tok.add_special_tokens(SPECIAL)
    tok.save(str(out / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    torch.manual_seed(seed)
    msa = MSAConfig(router_layer_idx="2,3", pooling_kernel_size=4, top_k_docs=4, decouple_router=True,
                    aux_loss_method="INFONCE_DECOUPLE")
    cfg = Config(arch="qwen3", vocab_size=vocab, n_layer=4, n_embd=64, n_head=4, n_kv_head=2, head_dim=24,
                 intermediate_size=96, rope_theta=5e6, bos_token_id=None, eos_token_id=2, model_type="msa", msa=msa)
    model = MSAModel(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    state = {("model." + k if not k.startswith("lm_head") else k): v.contiguous() for k, v in model.state_dict().items()}
    assert any(k.endswith("self_attn.router_q_proj.0.weight") for k in state)
    save_file(state, str(out / "model.safetensors"))
    hf = cfg.to_hf()
    hf["msa_config"].update({"infonce_loss_temp": 0.1, "rewrite_position": True, "aux_loss": False})
    (out / "config.json").write_text(json.dumps(hf, indent=2))
    return out


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory, default_tokenizer_dir) -> Path:
    return write_reference_checkpoint(tmp_path_factory.mktemp("msa-ref"), default_tokenizer_dir, seed=3)


@pytest.fixture(scope="module")
def ref_engine(ref_dir, tmp_path_factory) -> Engine:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("ref-home")))
        return Engine.load(str(ref_dir), dtype="float32")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "guarantee.txt").write_text("Northwind's obligations are guaranteed by its parent, Aurelia Holdings.\n")
    (root / "aurelia.txt").write_text("Aurelia Holdings has its registered office in Rotterdam.\n")
    (root / "other.txt").write_text("Blue Harbor Robotics pays EUR 48,500 per quarter.\n")
    return root


def test_reference_checkpoint_loads_with_its_semantics(ref_engine: Engine) -> None:
    cfg = ref_engine.cfg
    assert cfg.model_type == "msa" and cfg.arch == "qwen3" and cfg.qk_norm
    assert cfg.router_layers == [2, 3] and cfg.msa.decouple_router
    assert not cfg.msa.cosine  # INFONCE_DECOUPLE: the reference ranks by dot product at inference
    assert ref_engine.protocol == "reference"
    for i in cfg.router_layers:
        attn = ref_engine.model.layers[i].self_attn
        assert attn.router_q_proj[0].weight.shape == (cfg.n_head * cfg.head_dim, cfg.n_embd)
        assert attn.router_k_proj[0].weight.shape == (cfg.n_kv_head * cfg.head_dim, cfg.n_embd)
    assert ref_engine.model.layers[0].self_attn.router_q_proj is None


def test_documents_are_encoded_with_their_ids(ref_engine: Engine, corpus: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    report = ingest_dir(corpus, store, ref_engine)
    assert report.failed == 0 and report.documents == 3
    docs = store.live_documents(None)
    # The stored chunks are those of "<|im_start|>[id]. text[id]<|im_end|>".
    for d in docs:
        toks = ref_engine.tok.document(f"{d.path} ({d.anchor})\n{d.text}", d.id)
        assert d.n_tokens == len(toks)
        assert d.n_chunks == -(-len(toks) // ref_engine.cfg.msa.pooling_kernel_size)
        seg = store.segment(d.segment_id)
        assert seg.rk is not None  # decoupled router: routing keys stored beside K̄, V̄
    out = route(store, ref_engine, "Where is Aurelia Holdings registered?", mode="msa")
    assert len(out["docs"]) == 3 and {d["doc_id"] for d in out["docs"]} == {d.id for d in docs}


def _scripted(engine: Engine, script: list[str], seen: list[dict]):
    """A Generate that returns scripted texts in turn and records what it was called with."""
    tok = engine.tok

    def gen(logits, cache, pos, stop_after, max_tokens):  # noqa: ANN001, ANN202
        assert logits.shape == (engine.cfg.vocab_size,)
        seen.append({"pos": pos, "stop_after": set(stop_after), "cache_len": cache.length(0)})
        return tok.encode(script[len(seen) - 1])
    return gen


def test_interleave_round_trip_with_scripted_generations(ref_engine: Engine, corpus: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    ingest_dir(corpus, store, ref_engine)
    ids = {d.path: d.id for d in store.live_documents(None)}
    a, b = ids["guarantee.txt"], ids["aurelia.txt"]
    script = [
        f"[{a}]<|object_ref_end|>",  # round 1: one id
        f"[{b}][{a}][987654]<|object_ref_end|>",  # round 2: a new id, a repeat, one not in memory
        "<End-of-Retrieve>",  # round 3: enough
        "The answer to the question is: Rotterdam",
    ]
    seen: list[dict] = []
    router = Router(store, ref_engine, None, "msa", None)
    q = "In which city is the registered office of the company that guarantees Northwind's obligations?"
    answer, hits, log, timing = ask_reference(router, ref_engine, q, rounds=4, generate=_scripted(ref_engine, script, seen))
    assert answer == "Rotterdam"
    assert [r["injected"] for r in log] == [[a], [b], []]
    assert log[1]["requested"] == [b, a, 987654]  # the unknown id is dropped, the repeat not injected twice
    assert [router.memory.docs[h.index].id for h in hits] == [a, b]
    tok = ref_engine.tok
    assert seen[0]["stop_after"] == {tok.object_ref_end, tok.end_of_retrieve} and seen[3]["stop_after"] == set()
    # Each round re-prefills a longer transcript; the answer continues the last round's cache.
    assert seen[0]["pos"] < seen[1]["pos"] < seen[2]["pos"] < seen[3]["pos"]
    assert all(r["routed"] for r in log)
    # Prompt layout: the answer stage's position = round 3 prefill + <End-of-Retrieve> + answer prompt
    # (the scripted round-3 tokens were not fed by the script, so the answer prompt carries them).
    n_tail = len(tok.encode("<End-of-Retrieve>")) + len(tok.encode(ANSWER_PROMPT.format(question=q)))
    assert seen[3]["pos"] == seen[2]["pos"] + n_tail


def test_rounds_are_bounded_and_the_answer_prompt_is_injected(ref_engine: Engine, corpus: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    ingest_dir(corpus, store, ref_engine)
    ids = sorted(d.id for d in store.live_documents(None))
    script = [f"[{ids[0]}]<|object_ref_end|>", f"[{ids[1]}]<|object_ref_end|>", "Rotterdam"]
    seen: list[dict] = []
    router = Router(store, ref_engine, None, "msa", None)
    answer, hits, log, _ = ask_reference(router, ref_engine, "q?", rounds=2, generate=_scripted(ref_engine, script, seen))
    assert len(log) == 2 and answer == "Rotterdam" and len(hits) == 2


def test_ask_uses_the_reference_protocol_end_to_end(ref_engine: Engine, corpus: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    ingest_dir(corpus, store, ref_engine)
    res = ask(store, ref_engine, "Where is Aurelia Holdings registered?", rounds=2, max_new_tokens=4, mode="msa")
    assert res.rounds and "requested" in res.rounds[0]  # the reference loop ran, with the real (random) model
    live = {d.id for d in store.live_documents(None)}
    assert all(c["doc_id"] in live for c in res.citations)


def test_a_store_built_with_one_checkpoint_refuses_another(ref_engine, corpus, tmp_path, default_tokenizer_dir, tmp_path_factory):
    store = Store.open(tmp_path / "store", create=True)
    ingest_dir(corpus, store, ref_engine)
    other_dir = write_reference_checkpoint(tmp_path_factory.mktemp("msa-ref-2"), default_tokenizer_dir, seed=4)
    other = Engine.load(str(other_dir), dtype="float32")
    with pytest.raises(FingerprintMismatch):
        ingest_dir(corpus, store, other)
    with pytest.raises(FingerprintMismatch):
        route(store, other, "q", mode="msa")


def test_parse_ids() -> None:
    assert parse_ids("[3][12] and [3]<|object_ref_end|>") == [3, 12]
    assert parse_ids("none") == []
    assert "{question}" in FIRST_PROMPT


def test_model_inspect_reports_protocol_and_memory(ref_dir: Path) -> None:
    from msa_agent.cli.main import app

    res = CliRunner().invoke(app, ["model", "inspect", str(ref_dir), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["protocol"] == "reference" and info["router_layers"] == [2, 3]
    assert info["pooling_kernel_size"] == 4 and info["top_k_docs"] == 4 and info["router_weight_tensors"] == 4
    # 2 router layers x (K̄, V̄, K̄ᴿ) x 2 kv heads x 24 x 2 bytes per 4-token chunk
    assert info["memory_bytes_per_token"] == 2 * 3 * 2 * 24 * 2 / 4
    res = CliRunner().invoke(app, ["model", "inspect", str(ref_dir / "nope")])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
