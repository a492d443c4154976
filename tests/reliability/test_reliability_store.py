"""Damaged segments never answer queries; disk full and I/O errors fail a run cleanly and keep the
last committed state; queries during an ingest answer from committed states; collections never leak."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msa_agent.ask import ask, route
from msa_agent.errors import StoreCorrupt
from msa_agent.pipeline import ingest_dir
from msa_agent.store import Store
from msa_agent.store.schema import IngestRunRow
from sqlalchemy import select

make_tree = sys.modules["crash_trials"].make_tree  # loaded by this directory's conftest

MODES = ("lexical", "msa", "hybrid")


@pytest.fixture
def built(engine, tmp_path):
    tree = make_tree(tmp_path / "tree")
    st = Store.open(tmp_path / "store", create=True)
    ingest_dir(tree, st, engine)
    yield tree, st
    st.close()


def _docs(st: Store) -> set[tuple]:
    return {(d.path, d.anchor, d.content_hash, d.doc_key) for d in st.live_documents("default")}


def test_a_flipped_byte_keeps_its_segment_out_of_every_answer(engine, tmp_path):
    tree = make_tree(tmp_path / "tree")
    st = Store.open(tmp_path / "store", create=True)
    ingest_dir(tree, st, engine)
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "pump_x.md").write_text("# Pump X\n\nThe pump-3 pressure alarm is handled by pump X.\n")
    ingest_dir(tmp_path / "extra", st, engine)  # a second segment, then damaged
    bad = next(d.segment_id for d in st.live_documents("default") if d.path.endswith("pump_x.md"))
    st.close()
    f = tmp_path / "store" / "segments" / bad / "k.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x40
    f.write_bytes(bytes(data))
    st = Store.open(tmp_path / "store")
    try:
        with pytest.raises(StoreCorrupt, match="checksum"):
            st.segment(bad)
        for mode in MODES:
            with pytest.warns(RuntimeWarning, match=bad):
                r = route(st, engine, "pump X pump-3 pressure alarm", mode=mode)
            assert r["docs"], mode
            assert all(not h["path"].endswith("pump_x.md") for h in r["docs"]), (mode, r["docs"])
    finally:
        st.close()


def test_disk_full_during_a_segment_write_fails_cleanly_and_keeps_the_store(built, tiny_model_dir, monkeypatch):
    from msa_agent.cli.main import app
    from msa_agent.store import segments

    tree, st = built
    before = _docs(st)
    (tree / "svc_0.py").write_text("def changed():\n    return 'disk full'\n")
    (tree / "new.md").write_text("# New\n\nA new file that never makes it.\n")
    real = segments._write_npy
    calls = []

    def full(path, arr):  # noqa: ANN001, ANN202
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, arr)

    monkeypatch.setattr(segments, "_write_npy", full)
    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MSA_DTYPE", "float32")
    res = CliRunner().invoke(app, ["ingest", str(tree), "--store", str(st.path)])
    assert res.exit_code == 1, (res.stdout, res.stderr, res.exception)
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "No space left on device" in lines[-1], res.stderr
    assert "Traceback" not in res.output
    st2 = Store.open(st.path)
    try:
        assert _docs(st2) == before
        with st2.write_lock():
            st2.compact()
        assert st2.verify() == []
        assert not list((st.path / "segments").glob(".tmp-*"))
    finally:
        st2.close()


def test_a_real_full_filesystem(engine, tmp_path):
    """A 3 MB tmpfs (needs root and mount permission; skipped visibly otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip() or r.returncode}")
    st = None
    try:
        tree = make_tree(tmp_path / "tree")
        st = Store.open(mnt / "store", create=True)
        ingest_dir(tree, st, engine)
        before = _docs(st)
        big = tmp_path / "big"
        big.mkdir()
        for i in range(60):
            (big / f"f{i}.md").write_text(f"# File {i}\n\n" + " ".join(f"word{i}x{j}" for j in range(3000)))
        with pytest.raises(OSError) as failed:
            ingest_dir(big, st, engine, collection="big")
        # Said as a full disk (not numpy's "N requested and M written"), nothing half-written left
        # (before: a `.tmp-*` directory failed `verify` until `compact`), the run recorded as failed
        # (before: `running` forever). Issue #21, item 12.
        assert failed.value.errno == errno.ENOSPC and "No space left on device" in str(failed.value)
        assert _docs(st) == before
        assert not list((mnt / "store" / "segments").glob(".tmp-*"))
        assert st.verify() == []
        with st.session() as s:
            last = s.scalars(select(IngestRunRow).order_by(IngestRunRow.id.desc())).first()
        assert last.status == "error" and "No space left on device" in (last.error or "")
        shutil.rmtree(big)
    finally:
        if st is not None:
            st.close()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_queries_during_an_ingest_answer_from_committed_states(built, engine, tiny_model_dir, tmp_path):
    tree, st = built
    more = tmp_path / "more"
    more.mkdir()
    for i in range(40):
        (more / f"m{i}.md").write_text(f"# Memo {i}\n\nThe pump-3 pressure alarm memo number {i}.\n" * 20)
    env = {**os.environ, "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}
    proc = subprocess.Popen([sys.executable, "-m", "msa_agent.cli.main", "ingest", str(more), "--store", str(st.path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    answers, sizes = 0, set()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            reader = Store.open(st.path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # no damaged segment is ever seen
                    for mode in ("lexical", "msa"):
                        r = route(reader, engine, "pump-3 pressure alarm memo", mode=mode)
                        live = {d.id: d for d in reader.live_documents(None)}
                        for h in r["docs"]:
                            d = live.get(h["doc_id"])
                            if d is None:  # tombstoned since: it still was a committed document
                                continue
                            assert (d.path, d.anchor) == (h["path"], h["anchor"])
                        answers += 1
                        sizes.add(r["memory"]["documents"])
            finally:
                reader.close()
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert answers >= 2
    final = Store.open(st.path)
    assert final.verify() == []
    final.close()


def test_collections_never_leak(engine, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "alpha.md").write_text("# Alpha\n\nThe zephyrine-77 valve is serviced by Quorvex Ltd every March.\n")
    (a / "alpha2.md").write_text("# Alpha two\n\nAlpha plant pump notes, pressure and flow.\n")
    (b / "bravo.md").write_text("# Bravo\n\nThe kraltonite-12 turbine contract with Brimwell plc ends in June.\n")
    st = Store.open(tmp_path / "store", create=True)
    try:
        ingest_dir(a, st, engine, collection="A")
        ingest_dir(b, st, engine, collection="B")
        a_ids = {d.id for d in st.live_documents("A")}
        b_docs = st.live_documents("B")
        b_ids = {d.id for d in b_docs}
        assert a_ids and b_ids and not a_ids & b_ids
        crafted = [f"{d.title} {d.path} {d.anchor} document {d.id} doc_id={d.id} #{d.id}" for d in b_docs]
        crafted += ["kraltonite-12 turbine Brimwell plc June", f"{b}/bravo.md", "bravo.md kraltonite-12"]
        for q in crafted:
            for mode in MODES:
                r = route(st, engine, q, collection="A", mode=mode)
                assert {h["doc_id"] for h in r["docs"]} <= a_ids, (q, mode, r["docs"])
            res = ask(st, engine, q, collection="A", mode="hybrid", max_new_tokens=4, rounds=1)
            cited = {c.get("doc_id") for c in res.citations} if hasattr(res, "citations") else set()
            assert cited <= a_ids | {None}, (q, cited)
    finally:
        st.close()


def test_a_new_store_is_the_owners_alone(tmp_path):
    """Issue #21, item 10: stores were 0755/0644 from the umask, though they hold documents'
    verbatim text."""
    import stat

    import numpy as np

    from msa_agent.store import Store
    from msa_agent.store.segments import write_segment

    old = os.umask(0o022)
    try:
        st_ = Store.open(tmp_path / "s", create=True)
        rng = np.random.default_rng(0)
        k = rng.standard_normal((2, 3, 1, 4)).astype(np.float16)
        write_segment(st_.segments_dir, "seg1", k, k.copy(), None, np.arange(3, dtype=np.int32))
        st_.close()
    finally:
        os.umask(old)
    root = tmp_path / "s"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "msa.db").stat().st_mode) == 0o600
    for p in (root / "segments").rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p
