"""detect_kind, walk, decoding, SourceError and the package's import weight."""

import json
import os
import pickle
import subprocess
import sys

import pytest

from msa_agent.ingest import Document, SourceError, detect_kind, parse_file, walk


def test_source_error_is_one_line_with_path_and_reason():
    e = SourceError("a/b.pdf", "encrypted PDF\n(password required)")
    assert (e.path, e.reason, str(e)) == ("a/b.pdf", "encrypted PDF (password required)", "a/b.pdf: encrypted PDF (password required)")
    again = pickle.loads(pickle.dumps(e))  # crosses process boundaries intact
    assert (again.path, again.reason, str(again)) == (e.path, e.reason, str(e))


def test_document_is_frozen_and_hashable():
    d = Document(path="a.txt", kind="text", anchor="line 1", anchor_data={"line_start": 1, "line_end": 1}, text="x")
    assert d.title == "" and hash(d) == hash(Document("a.txt", "text", "line 1", {}, "x"))
    with pytest.raises(AttributeError):
        d.text = "y"


def test_detect_kind(tmp_path):
    files = {
        "a.py": b"print(1)\n",
        "a.ts": b"let x = 1;\n",
        "notes.md": b"# Notes\n",
        "nda.txt": b"This Agreement between the Parties (hereinafter 'Discloser') shall terminate on notice; governing law: Delaware.",
        "blob.bin": b"\x00\x01\x02",
        "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "nul.txt": b"text with a \x00 in it",
        "data.weird": b"hello",
        "changelog.Debian": b"tzdata (2025b-0+deb12u2) bookworm; urgency=medium\n\n  * New upstream version.\n",
        "packed.dat": b"\x01\x02\x03\x04\x05\x06\x07\x08abc" * 10,
        "README": b"Read me.\n",
        "run": b"#!/bin/sh\necho hi\n",
        "config.yaml": b"port: 8080\n",
        "latin.txt": "Caf\u00e9 cr\u00e8me".encode("latin-1"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    got = {name: detect_kind(tmp_path / name) for name in files}
    assert got == {
        "a.py": "code",
        "a.ts": "code",
        "notes.md": "text",
        "nda.txt": "contract",
        "blob.bin": None,
        "image.png": None,
        "nul.txt": None,
        "data.weird": "text",  # plain text of no known type is read, not dropped
        "changelog.Debian": "text",
        "packed.dat": None,  # control bytes: not text
        "README": "text",
        "run": "code",
        "config.yaml": "text",
        "latin.txt": "text",
    }
    assert detect_kind(tmp_path / "missing.txt") is None


def test_decoding_falls_back_to_latin1_and_refuses_binary(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Caf\u00e9 cr\u00e8me\r\nsecond line\r\n".encode("latin-1"))
    [d] = parse_file(tmp_path / "latin.txt", tmp_path)
    assert d.text == "Caf\u00e9 cr\u00e8me\nsecond line"
    (tmp_path / "bom.txt").write_bytes("\ufeffhello".encode("utf-8"))
    assert parse_file(tmp_path / "bom.txt", tmp_path)[0].text == "hello"
    (tmp_path / "bin.txt").write_bytes(b"abc\x00def")
    with pytest.raises(SourceError, match="bin.txt: not ingestible"):
        parse_file(tmp_path / "bin.txt", tmp_path)
    with pytest.raises(SourceError, match="gone.txt: no such file"):
        parse_file(tmp_path / "gone.txt", tmp_path)


def test_walk_skips_junk_and_stays_inside_root(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside root")
    layout = {
        "b.txt": "b",
        "a/z.py": "x = 1",
        "a/b.md": "# b",
        "a-c.txt": "c",
        ".hidden.txt": "h",
        ".git/config.txt": "g",
        "__pycache__/m.py": "p",
        "node_modules/pkg/index.js": "n",
        "env/lib/site.py": "v",
        "env/pyvenv.cfg": "home = /usr",
        "docs/.cache/x.txt": "c",
        "img/logo.bin": "\x00\x01",
        "src/data.unknown": "\x01\x02\x03\x04\x05\x06\x07",  # control bytes: not text, skipped
    }
    for rel, text in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.symlink(outside, root / "link_out")
    os.symlink(outside / "secret.txt", root / "secret_link.txt")
    os.symlink(root / "a", root / "link_in")  # inside root: same files, yielded once
    got = [p.relative_to(root).as_posix() for p in walk(root)]
    assert got == ["a-c.txt", "a/b.md", "a/z.py", "b.txt"]
    assert list(walk(root / "b.txt")) == [root / "b.txt"]


def test_every_document_is_json_serialisable_and_bounded(tmp_path):
    (tmp_path / "a.py").write_text("import os\n\ndef f():\n    return os.getcwd()\n")
    (tmp_path / "b.csv").write_text("timestamp,sensor,v\n2024-01-01T00:00:00Z,s,1\n")
    (tmp_path / "c.md").write_text("# T\n\n" + "word " * 2000)
    for p in walk(tmp_path):
        for d in parse_file(p, tmp_path, max_chars=700):
            json.dumps(d.anchor_data)
            assert 0 < len(d.text) <= 700 and d.text.strip()


def test_import_pulls_in_no_torch_model_or_store():
    code = (
        "import sys, msa_agent.ingest; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'pypdf', 'docx', 'tree_sitter') "
        "or m.startswith(('msa_agent.model', 'msa_agent.store', 'msa_agent.kernels'))]; "
        "print(bad); sys.exit(bool(bad))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
