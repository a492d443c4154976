"""The library API, `from msa_agent import Memory`: open, ingest, ask, route, status over the tiny
model; the same answers as the functions the CLI used before it; resident indexes; one-line
errors on bad input; `Memory.connect` against a running server."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

import msa_agent
from msa_agent import Answer, Memory, Routing
from msa_agent.ask import ask as run_ask, route as run_route
from msa_agent.errors import BadInput, MSAError, StoreNotFound
from msa_agent.store import Store

Q_CODE = "What is the default timeout_s of PumpController.emergency_stop?"
Q_LEGAL = "How much does the Buyer pay the Supplier per quarter?"


def comparable(res: dict) -> dict:
    """An ask result without its wall-clock figures."""
    out = {k: v for k, v in res.items() if k != "timing"}
    out["rounds"] = [{k: v for k, v in r.items() if k != "ms"} for r in res["rounds"]]
    out["reading"] = {k: v for k, v in res["reading"].items() if k != "first_token_ms"}
    return out


@pytest.fixture
def two_dirs(corpus: Path, tmp_path: Path) -> tuple[Path, Path]:
    legal, ops = tmp_path / "legal", tmp_path / "ops"
    shutil.copytree(corpus / "contracts", legal / "contracts")
    shutil.copytree(corpus / "code", ops / "code")
    shutil.copytree(corpus / "logs", ops / "logs")
    return legal, ops


@pytest.fixture
def mem(tmp_path: Path, engine, two_dirs):
    """A Memory over the shared tiny engine with `legal` and `ops` ingested through it."""
    legal, ops = two_dirs
    with Memory.open(tmp_path / "store", create=True, engine=engine) as m:
        m.ingest(legal, collection="legal")
        m.ingest(ops, collection="ops")
        yield m


def test_the_package_exports_memory_lazily() -> None:
    assert msa_agent.Memory is Memory and "Memory" in msa_agent.__all__
    with pytest.raises(AttributeError):
        msa_agent.NoSuchThing  # noqa: B018


def test_open_loads_the_model_by_name_and_ingest_is_incremental(tmp_path: Path, tiny_model_dir: Path, corpus: Path):
    with pytest.raises(StoreNotFound):
        Memory.open(tmp_path / "nowhere", model=tiny_model_dir)
    assert not (tmp_path / "nowhere").exists()
    with Memory.open(tmp_path / "store", model=tiny_model_dir, create=True, dtype="float32") as m:
        assert m.device == "cpu" and m.path == tmp_path / "store"
        first = m.ingest(corpus)
        assert first.added == 4 and first.failed == 0 and first.collection == "default"
        again = m.ingest(corpus)
        assert again.unchanged == 4 and again.added == again.updated == 0
        (corpus / "code" / "pump.py").unlink()
        assert m.ingest(corpus).removed == 1
        res = m.ask(Q_LEGAL)
        assert isinstance(res, Answer) and res.answer and res.citations and res.rounds
        assert m.status()["documents"] == Store.open(tmp_path / "store").status()["documents"]
    # what the Python API wrote, the CLI's store reads: the rows are there after close
    st = Store.open(tmp_path / "store")
    assert {s["root"] for s in st.status()["sources"]} == {str(corpus.resolve())}
    st.close()


def test_ask_and_route_equal_the_in_process_functions(mem: Memory, engine):
    streamed: list[str] = []
    res = mem.ask(Q_CODE, collection="ops", top_k=3, on_token=streamed.append)
    assert "".join(streamed) == res.answer == str(res)
    want = run_ask(mem.store, engine, Q_CODE, collection="ops", top_k=3).as_dict()
    assert comparable(res.as_dict()) == comparable(want)
    assert set(res.as_dict()) == set(want)
    assert res.citations == want["citations"] and len(res.rounds) == len(want["rounds"]) >= 1
    assert all(c["path"].startswith(("code/", "logs/")) for c in res.citations)  # ops only

    r = mem.route(Q_CODE, collection="ops", top_k=2, mode="lexical")
    assert isinstance(r, Routing) and r.mode == "lexical"
    want_r = run_route(mem.store, engine, Q_CODE, collection="ops", top_k=2, mode="lexical")
    assert r.docs == want_r["docs"] and r.docs[0]["path"] == "code/pump.py"
    assert set(r.as_dict()) == set(want_r)
    assert Answer.from_dict(res.as_dict()) == res and Routing.from_dict(r.as_dict()) == r


def test_indexes_stay_resident_until_the_store_changes(mem: Memory, corpus: Path, tmp_path: Path):
    mem.route(Q_CODE, collection="ops")
    mem.route("pump", collection="ops")
    mem.ask(Q_CODE, collection="ops", max_tokens=4)
    assert mem.builds == 1
    mem.route(Q_LEGAL, collection="legal")
    assert mem.builds == 2
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "note.txt").write_text("The spare pump impeller is kept in cabinet 7 of the east plant room.\n")
    mem.ingest(extra, collection="ops")  # a commit: the next question rebuilds its index
    r = mem.route("Where is the spare pump impeller kept?", collection="ops", mode="lexical")
    assert mem.builds == 3 and r.docs[0]["path"] == "note.txt"


def test_status_whole_and_scoped(mem: Memory):
    whole = mem.status()
    assert whole["collections"] == ["legal", "ops"] and "reader" in whole and "fingerprint" in whole
    legal, ops = mem.status(["legal"]), mem.status(["ops"])
    assert legal["collections"] == ["legal"] and {s["collection"] for s in legal["sources"]} == {"legal"}
    for key in ("documents", "tokens", "chunks", "segments"):
        assert legal[key] + ops[key] == whole[key] and 0 < legal[key] < whole[key], key
    assert 0 < legal["bytes_on_disk"] < whole["bytes_on_disk"]
    assert mem.status(["nothing-here"])["documents"] == 0


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"question": "  "}, "question is empty"),
    ({"question": "x", "mode": "psychic"}, "unknown routing mode"),
    ({"question": "x", "rounds": 0}, "rounds: an integer from 1 to 8"),
    ({"question": "x", "top_k": 0}, "top_k"),
    ({"question": "x", "max_tokens": 99999}, "max_tokens"),
])
def test_bad_questions_are_one_line_errors(mem: Memory, kwargs: dict, words: str):
    with pytest.raises(BadInput, match=words) as e:
        mem.ask(**kwargs)
    assert "\n" not in str(e.value)


def test_bad_ingest_and_device_create_nothing(tmp_path: Path, engine, corpus: Path):
    with pytest.raises(BadInput, match="no such directory"):
        Memory.check_ingest(tmp_path / "missing")
    with pytest.raises(BadInput, match="unknown kind"):
        Memory.check_ingest(corpus, kind="poem")
    Store.open(tmp_path / "store", create=True).close()
    with pytest.raises(BadInput, match="--device"):
        Memory.open(tmp_path / "store", device="tpu")
    with Memory.open(tmp_path / "store", engine=engine) as m:
        with pytest.raises(BadInput, match="no such directory"):
            m.ingest(tmp_path / "missing")
        with pytest.raises(BadInput, match="no documents"):
            m.ask(Q_CODE)
        assert m.status()["documents"] == 0


def test_a_failed_write_is_a_named_error(mem: Memory, corpus: Path, monkeypatch: pytest.MonkeyPatch):
    import errno

    from msa_agent import api, pipeline

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "ingest_dir", full)
    with pytest.raises(api.StoreWriteError, match="cannot write the store: No space left on device") as e:
        mem.ingest(corpus)
    assert isinstance(e.value, MSAError)


def test_connect_to_a_running_server_gives_the_same_answers(mem: Memory):
    import uvicorn

    from msa_agent.serve import RemoteError, create_app
    from msa_agent.store.tokens import create_token

    _, token = create_token(mem.store, ["legal"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(mem.engine(), mem.store), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        with Memory.connect(f"http://127.0.0.1:{port}", token) as remote:
            tokens: list[str] = []
            got = remote.ask(Q_LEGAL, top_k=3, on_token=tokens.append)
            want = mem.ask(Q_LEGAL, collection="legal", top_k=3)
            assert comparable(got.as_dict()) == comparable(want.as_dict()) and "".join(tokens) == got.answer
            assert remote.route(Q_LEGAL, top_k=2).docs == mem.route(Q_LEGAL, collection="legal", top_k=2).docs
            st = remote.status()
            assert st["collections"] == ["legal"] and st["documents"] == mem.status(["legal"])["documents"]
            with pytest.raises(RemoteError, match="403"):
                remote.ask(Q_CODE, collection="ops")
        with pytest.raises(RemoteError, match="401"):
            Memory.connect(f"http://127.0.0.1:{port}").status()
    finally:
        server.should_exit = True
        thread.join(30)
