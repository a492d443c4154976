"""`msa ingest --timezone`: log times written without a zone are placed in the named one (and the
files re-parsed when it changes); an unknown zone is a user error. The store is looked at after."""

from __future__ import annotations

import shutil
from pathlib import Path

from msa_agent.store import Store

SAMPLE = Path(__file__).resolve().parents[1] / "ingest" / "logsamples" / "nginx_error.log"


def _anchors(store_dir):
    st = Store.open(store_dir)
    try:
        return sorted(d.anchor for d in st.live_documents(None))
    finally:
        st.close()


def test_ingest_timezone_option(msa, msa_json, tmp_path, monkeypatch):
    monkeypatch.setenv("MSA_TIMEZONE", "")  # the CLI passes the option on through it: restored after
    logs, store = tmp_path / "logs", tmp_path / "store"
    logs.mkdir()
    shutil.copy(SAMPLE, logs / "error.log")
    res = msa("ingest", logs, "--store", store, "--timezone", "Mars/Olympus", code=1)
    assert "unknown time zone 'Mars/Olympus'" in res.stderr and not store.exists()

    msa_json("ingest", logs, "--store", store)
    assert _anchors(store) == ["2026-12-03T18:12:13 – 2026-12-03T18:12:14, lines 1-12"]  # as written: no zone

    rep = msa_json("ingest", logs, "--store", store, "--timezone", "Europe/Berlin")
    assert rep["updated"] == 1  # another zone: the same bytes parse into other documents
    assert _anchors(store) == ["2026-12-03T18:12:13+01:00 – 2026-12-03T18:12:14+01:00, lines 1-12"]
