"""`msa ingest` over bad inputs: each failure reported with its path and reason, the run going on,
the summary counting it, exit code 2; what lands in the store afterwards."""

from __future__ import annotations

import builtins
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pypdf
import pytest

from msa_agent import pipeline
from msa_agent.store import Store

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
_spec = importlib.util.spec_from_file_location("make_sample_pdf", SAMPLES / "make_sample_pdf.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
write_pdf = _mod.write_pdf

CONTRACT = [["SUPPLY AGREEMENT", "", "1. The Supplier delivers pump-3 parts to the Customer every quarter.",
             "2. The Customer pays EUR 48,500 per quarter."]]


def deny_reading(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """A file the OS refuses to read. Tests run as root, where chmod 000 blocks nothing: then
    opening it is made to fail the way the OS would."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real_open, real_path_open = builtins.open, pathlib.Path.open

    def guarded(file, *a, **k):
        if isinstance(file, (str, os.PathLike)) and Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    def guarded_path(self, *a, **k):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_path_open(self, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(pathlib.Path, "open", guarded_path)


def _encrypted_pdf() -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(write_pdf(CONTRACT))))
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture
def messy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "messy"
    (root / "docs").mkdir(parents=True)
    (root / "code").mkdir()
    (root / "logs").mkdir()
    (root / "docs" / "notes.md").write_text("# Notes\n\nThe valve on line 4 is replaced every spring.\n")
    (root / "code" / "tool.py").write_text("def tool():\n    return 'pump-3'\n")
    pdf = write_pdf(CONTRACT * 3)
    (root / "docs" / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (root / "docs" / "encrypted.pdf").write_bytes(_encrypted_pdf())
    (root / "docs" / "scanned.pdf").write_bytes(write_pdf([["(scan)"]], image_pages={0}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("holiday/photo-list.txt", "not a word document")
    (root / "docs" / "report.docx").write_bytes(buf.getvalue())
    (root / "code" / "compiled.py").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    line = "2024-03-01T10:00:00Z plant-1 pumpd[42]: pump-3 pressure 4.2 bar nominal\n"
    with (root / "logs" / "huge.log").open("w") as f:
        f.write(line * (3_000_000 // len(line) + 1))  # 3 MB, over --max-file-mb 0.05 (2.5 MB for logs)
    (root / "docs" / "latin1.txt").write_bytes("Fußgängerbrücke: café crème for the night shift.\n".encode("latin-1"))
    (root / "loop").symlink_to(root)  # a directory link back to the root
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("Outside the root: the vault code is 7731.\n")
    (root / "docs" / "outside.txt").symlink_to(outside)
    (root / "docs" / "locked.txt").write_text("You cannot read me.\n")
    deny_reading(monkeypatch, root / "docs" / "locked.txt")
    return root


def _store(store_dir: Path):
    st = Store.open(store_dir)
    try:
        return {d.path: d for d in st.live_documents(None)}, st.status(), st.verify()
    finally:
        st.close()


def test_every_bad_input_is_reported_and_the_run_goes_on(msa, messy, store_dir, monkeypatch):
    huge = messy / "logs" / "huge.log"
    real_hash, real_read = pipeline.file_hash, pathlib.Path.read_bytes

    def no_huge_hash(path):
        assert Path(path) != huge, "the oversized log was read"
        return real_hash(path)

    def no_huge_read(self):
        assert self != huge, "the oversized log was read"
        return real_read(self)

    monkeypatch.setattr(pipeline, "file_hash", no_huge_hash)
    monkeypatch.setattr(pathlib.Path, "read_bytes", no_huge_read)

    res = msa("ingest", messy, "--store", store_dir, "--max-file-mb", "0.05", "--json", code=2)
    rep = json.loads(res.stdout)
    reasons = {Path(f["path"]).relative_to(messy).as_posix(): f["reason"] for f in rep["failures"]}
    assert set(reasons) == {"docs/truncated.pdf", "docs/encrypted.pdf", "docs/scanned.pdf", "docs/report.docx",
                            "code/compiled.py", "logs/huge.log", "docs/locked.txt"}
    assert "encrypted" in reasons["docs/encrypted.pdf"]
    assert "no extractable text" in reasons["docs/scanned.pdf"]
    assert "not a Word document" in reasons["docs/report.docx"] and "zip" in reasons["docs/report.docx"]
    assert reasons["code/compiled.py"] == "not text: binary content in a .py file"
    assert reasons["logs/huge.log"].startswith("too large to ingest (3.0 MB; the limit is 0.05 MB, 2.5 MB for logs")
    assert reasons["docs/locked.txt"] == "cannot read: Permission denied"
    assert reasons["docs/truncated.pdf"]
    assert (rep["added"], rep["failed"], rep["unchanged"], rep["removed"]) == (3, 7, 0, 0)
    assert rep["skipped"] == {"symlink": 2}
    notes = {Path(w["path"]).name: w["reason"] for w in rep["warnings"]}
    assert notes["loop"] == "symlink back to a directory above it (a loop), not followed"
    assert notes["outside.txt"].startswith("symlink to ") and "outside the ingested directory" in notes["outside.txt"]
    # Each failure said on stderr as it happened, with its path.
    for f in rep["failures"]:
        assert f"failed: {f['path']}: {f['reason']}" in res.stderr.splitlines()

    docs, status, problems = _store(store_dir)
    assert set(docs) == {"docs/notes.md", "code/tool.py", "docs/latin1.txt"} and problems == []
    assert "Fußgängerbrücke: café crème" in docs["docs/latin1.txt"].text  # non-UTF-8 text read as latin-1
    assert not any("vault code" in d.text for d in docs.values())  # the link out of the root not followed
    [source] = status["sources"]
    assert source["last_run"]["status"] == "partial" and source["last_run"]["failed"] == 7
    assert {f["path"] for f in source["failures"]} == {f["path"] for f in rep["failures"]}
    assert source["last_run"]["skipped"] == {"symlink": 2}

    # The text summary says the same; the exit code stays 2 while the inputs are bad.
    res = msa("ingest", messy, "--store", store_dir, "--max-file-mb", "0.05", code=2)
    assert "unchanged 3, failed 7" in res.stdout and "skipped 2: 2 symlink" in res.stdout
    for f in rep["failures"]:
        assert f"  failed: {f['path']}: {f['reason']}" in res.stdout.splitlines()
    text = msa("status", "--store", store_dir).stdout
    assert "last run partial" in text and f"failed: {messy / 'docs' / 'encrypted.pdf'}" in text


def test_a_good_pdf_that_turns_bad_keeps_its_documents(msa, msa_json, tmp_path, store_dir):
    root = tmp_path / "contracts"
    root.mkdir()
    pdf = root / "supply.pdf"
    pdf.write_bytes(write_pdf(CONTRACT))
    msa("ingest", root, "--store", store_dir)
    good, _, _ = _store(store_dir)
    assert "48,500" in good["supply.pdf"].text
    data = pdf.read_bytes()
    pdf.write_bytes(data[: len(data) // 2])  # truncated by a copy that died half way
    res = msa("ingest", root, "--store", store_dir, "--json", code=2)
    rep = json.loads(res.stdout)
    [f] = rep["failures"]
    assert f["path"] == str(pdf) and f["reason"] and f["kept_documents"] == 1
    assert (rep["removed"], rep["updated"]) == (0, 0)
    assert "(kept its 1 documents from the last good version)" in res.stderr
    docs, status, problems = _store(store_dir)
    assert docs.keys() == good.keys() and docs["supply.pdf"].id == good["supply.pdf"].id and problems == []
    assert status["sources"][0]["failures"] == [f]
    hits = msa_json("route", "What does the Customer pay per quarter?", "--store", store_dir, "--mode", "lexical")
    assert hits["docs"][0]["path"] == "supply.pdf"


def test_an_empty_directory_is_a_clean_run(msa_json, tmp_path, store_dir):
    (tmp_path / "empty").mkdir()
    rep = msa_json("ingest", tmp_path / "empty", "--store", store_dir)
    assert {k: rep[k] for k in ("added", "updated", "removed", "unchanged", "failed", "documents", "tokens",
                                "reused_documents")} == dict.fromkeys(
        ("added", "updated", "removed", "unchanged", "failed", "documents", "tokens", "reused_documents"), 0)
    assert rep["failures"] == [] and rep["skipped"] == {}
    docs, status, problems = _store(store_dir)
    assert docs == {} and problems == [] and status["sources"][0]["last_run"]["status"] == "ok"


def test_bad_options_exit_1(msa, fails, corpus, store_dir, tmp_path):
    fails(msa("ingest", corpus, "--store", store_dir, "--kind", "spreadsheet", code=1), "unknown kind")
    res = subprocess.run([sys.executable, "-m", "msa_agent.cli.main", "ingest", str(corpus), "--store", str(store_dir),
                          "--max-file-mb", "0"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 1 and res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    assert "--max-file-mb" in res.stderr
    assert not store_dir.exists()


def test_paths_are_not_read_as_rich_markup(msa, fails, corpus: Path, store_dir: Path, tmp_path: Path) -> None:
    """Issue #21, item 11: `msa ingest '/x/nope[/]x'` crashed with a MarkupError, and a file named
    `[bold]rich[x].md` showed as `rich.md` in `msa route`'s table."""
    bad = tmp_path / "nope[/]x"
    res = msa("ingest", bad, "--store", store_dir, code=1)
    assert "nope[/]x" in fails(res)
    (corpus / "[bold]rich[x].md").write_text("# Rich\n\nThe zebra-9 valve opens at 7.5 bar.\n")
    msa("ingest", corpus, "--store", store_dir)
    out = msa("route", "zebra-9 valve", "--store", store_dir, "--mode", "lexical").stdout
    assert "[bold]rich[x].md" in out


def test_an_empty_question_and_an_unknown_collection_are_user_errors(msa, fails, corpus: Path, store_dir: Path) -> None:
    """Issue #21, item 14: both answered with exit 0."""
    msa("ingest", corpus, "--store", store_dir)
    assert "question is empty" in fails(msa("ask", "  ", "--store", store_dir, code=1))
    assert "question is empty" in fails(msa("route", "", "--store", store_dir, code=1))
    assert "no documents in collection 'nope'" in fails(msa("route", "pump", "--store", store_dir, "--collection", "nope", code=1))
    assert "no documents in collection" in fails(msa("ask", "pump?", "--store", store_dir, "--collection", "nope", code=1))
    res = msa("ask", "pump?", "--store", store_dir, "--max-tokens", "100000", code=2)
    assert "2048" in res.output


def test_a_large_log_that_is_not_recognised_says_which_limit_applied(msa_json, tmp_path: Path, store_dir: Path) -> None:
    """Issue #21, item 13: a 52 MB .log was refused "over 100 MB for logs"."""
    root = tmp_path / "r"
    root.mkdir()
    (root / "app.log").write_text("no timestamps in this log at all, only words\n" * 2000)  # 90 KB
    (root / "ok.md").write_text("# Fine\n\ntext\n")
    rep = msa_json("ingest", root, "--store", store_dir, "--max-file-mb", "0.05", code=2)
    (reason,) = [f["reason"] for f in rep["failures"]]
    assert "0.1 MB" in reason or "0.09 MB" in reason or "(0.1 MB" in reason
    assert "not recognised as a log" in reason and "0.05 MB applied" in reason
