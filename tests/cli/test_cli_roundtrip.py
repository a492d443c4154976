"""A store survives its process: ingest with the real `msa` entry point in a subprocess, route
there right after, then reopen everything here and get the same documents, files and answers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

from sqlalchemy import select

from msa_agent.ask import route
from msa_agent.engine import Engine
from msa_agent.ingest import parse_file, walk
from msa_agent.store import Store
from msa_agent.store.schema import SegmentRow

QUESTIONS = ["What is the default timeout_s of PumpController.emergency_stop?",
             "What does Blue Harbor Robotics pay per quarter for pump-3?"]
MODES = ["msa", "lexical", "hybrid"]

# The subprocess: `msa ingest DIR --store S --json` through the console-script entry point, then
# routing right after it, in the same process, written to a file.
CHILD = textwrap.dedent("""
    import json, sys
    from msa_agent.cli.main import main
    corpus, store, out, questions, modes = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
    sys.argv = ["msa", "ingest", corpus, "--store", store, "--json"]
    try:
        main()
    except SystemExit as e:
        if e.code:
            raise
    from msa_agent.ask import route
    from msa_agent.engine import Engine
    from msa_agent.store import Store
    st, engine = Store.open(store), Engine.load()
    json.dump({m: {q: route(st, engine, q, mode=m, top_k=4)["docs"] for q in questions} for m in modes}, open(out, "w"))
""")


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_store_round_trip_across_a_process_restart(corpus, store_dir, tmp_path, tiny_model_dir, msa_json):
    env = {**os.environ, "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}
    routes_file = tmp_path / "routes.json"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(corpus), str(store_dir), str(routes_file), json.dumps(QUESTIONS),
         json.dumps(MODES)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["added"], report["failed"]) == (4, 0)
    routed_then = json.loads(routes_file.read_text())

    st = Store.open(store_dir)
    try:
        # Documents and anchors: exactly what the parsers make of the files.
        live = st.live_documents(None)
        assert sorted((d.path, d.kind, d.anchor, d.text) for d in live) == sorted(
            (d.path, d.kind, d.anchor, d.text) for p in walk(corpus) for d in parse_file(p, corpus))
        assert len(live) == report["documents"]

        # Segment files on disk, with the checksums their rows and meta.json recorded.
        with st.session() as s:
            rows = list(s.scalars(select(SegmentRow)))
        assert sorted(r.id for r in rows) == sorted(p.name for p in st.segments_dir.iterdir())
        for r in rows:
            sums = json.loads(r.checksums)
            assert set(sums) == {"k.npy", "v.npy", "chunks.npy"}  # no trained router: no rk.npy
            assert {n: _sha256(st.segments_dir / r.id / n) for n in sums} == sums
            assert json.loads((st.segments_dir / r.id / "meta.json").read_text())["checksums"] == sums
            assert r.n_chunks == st.segment(r.id).chunks.shape[0] and r.state == "sealed"
        assert st.verify() == []

        # Status numbers.
        status = st.status()
        assert (status["documents"], status["tokens"]) == (report["documents"], report["tokens"])
        assert status["chunks"] == sum(d.n_chunks for d in live) == sum(r.n_chunks for r in rows)
        assert status["bytes_on_disk"] == sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file())
        assert status["bytes_on_disk"] > sum(r.bytes for r in rows) > 0

        # Routing: the same documents, in the same order, with the same scores.
        engine = Engine.load(str(tiny_model_dir), dtype="float32")
        assert st.manifest["fingerprint"] == engine.fingerprint
        for m in MODES:
            for q in QUESTIONS:
                assert route(st, engine, q, mode=m, top_k=4)["docs"] == routed_then[m][q], (m, q)
    finally:
        st.close()

    # And `msa status` says the same as the library.
    cli_status = msa_json("status", "--store", store_dir)
    assert {k: cli_status[k] for k in ("documents", "tokens", "chunks", "segments", "fingerprint")} == {
        k: status[k] for k in ("documents", "tokens", "chunks", "segments", "fingerprint")}
