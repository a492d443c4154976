"""walk: .gitignore/.msaignore, vendored, generated, binary and oversized files, symlinks; skip counts."""

import os
from collections import Counter

import pytest

from msa_agent.ingest import SourceError, parse_file, walk


def _tree(root, layout: dict) -> None:
    for rel, data in layout.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)


def _walk(root, **kw):
    skipped: Counter = Counter()
    seen: list[tuple[str, str]] = []
    got = [
        p.relative_to(root).as_posix()
        for p in walk(root, skipped, on_skip=lambda p, why: seen.append((p.relative_to(root).as_posix(), why)), **kw)
    ]
    assert sum(skipped.values()) == len(seen)
    return got, skipped, dict(seen)


def test_gitignore_negation_dir_only_anchored_double_star_and_nesting(tmp_path):
    _tree(
        tmp_path,
        {
            ".gitignore": "# build output\n*.log\n!keep.log\nbuild/\n/top.md\ndocs/**/draft.md\nout\n",
            "a.log": "x",
            "keep.log": "kept by negation",
            "sub/keep.log": "negation applies at any depth",
            "build/app.py": "x = 1",  # dir-only pattern: the directory goes
            "lib/build": "a file called build stays",
            "src/build/gen.py": "x = 1",  # unanchored dir pattern: at any depth
            "top.md": "anchored: only at the root",
            "sub/top.md": "stays",
            "docs/draft.md": "** matches zero directories",
            "docs/a/b/draft.md": "and several",
            "docs/final.md": "stays",
            "out/x.txt": "a pattern without slash matches a directory too",
            "sub/.gitignore": "*.txt\n!important.txt\n/local.md\n",
            "sub/notes.txt": "ignored by the nested file",
            "sub/important.txt": "re-included by the nested file",
            "sub/local.md": "anchored to sub/",
            "sub/deeper/local.md": "not anchored here",
            "sub/deeper/more.txt": "nested rules reach down",
            "other/notes.txt": "the nested file does not reach sideways",
            "build2/.gitignore": "!*.log\n",
            "build2/run.log": "a deeper file re-includes what the root excludes",
        },
    )
    got, skipped, why = _walk(tmp_path)
    assert got == [
        "build2/run.log",
        "docs/final.md",
        "keep.log",
        "lib/build",  # plain text of no known type is read
        "other/notes.txt",
        "sub/deeper/local.md",
        "sub/important.txt",
        "sub/keep.log",
        "sub/top.md",
    ]
    assert why["build"] == why["src/build"] == why["out"] == "ignored"  # directories, counted once each
    assert why["a.log"] == why["top.md"] == why["docs/a/b/draft.md"] == why["sub/notes.txt"] == "ignored"
    assert "lib/build" not in why  # not ignored: a file, and the pattern was dir-only
    assert skipped["ignored"] == 10 and skipped["hidden"] == 3  # the three .gitignore files


def test_file_in_an_ignored_directory_cannot_be_reincluded(tmp_path):
    _tree(tmp_path, {".gitignore": "logs/\n!logs/important.txt\n", "logs/important.txt": "x", "a.txt": "a"})
    assert _walk(tmp_path)[0] == ["a.txt"]


def test_msaignore_adds_rules_and_can_reinclude_what_git_ignores(tmp_path):
    _tree(
        tmp_path,
        {
            ".gitignore": "data/\n*.csv\n",
            ".msaignore": "!data/\n!readings.csv\ndrafts/\n*.tmp.md\n",
            "data/plant.md": "# Plant",
            "readings.csv": "timestamp,sensor,v\n2024-01-01T00:00:00Z,s,1\n",
            "other.csv": "timestamp,sensor,v\n2024-01-01T00:00:00Z,s,1\n",
            "drafts/a.md": "# A",
            "notes.tmp.md": "# tmp",
            "notes.md": "# notes",
        },
    )
    got, skipped, why = _walk(tmp_path)
    assert got == ["data/plant.md", "notes.md", "readings.csv"]
    assert why["other.csv"] == why["drafts"] == why["notes.tmp.md"] == "ignored"


def test_vendored_directories_are_skipped_and_counted(tmp_path):
    _tree(
        tmp_path,
        {
            "main.go": "package main\n",
            "vendor/modules.txt": "# github.com/x/y v1.0.0\n",
            "vendor/github.com/x/y/y.go": "package y\n",
            "web/node_modules/left-pad/index.js": "module.exports = 1;\n",
            "web/bower_components/jq/jq.js": "var a;\n",
            "cpp/third_party/abseil/absl/base.h": "int x;\n",
            "app/_vendor/six.py": "x = 1\n",
            # In a contracts tree, vendor/ holds vendor agreements: walked like any folder.
            "contracts/vendor/acme/msa.md": "# Master Services Agreement\n",
            "contracts/vendor/globex.txt": "Globex terms.\n",
        },
    )
    got, skipped, why = _walk(tmp_path)
    assert got == ["contracts/vendor/acme/msa.md", "contracts/vendor/globex.txt", "main.go"]
    assert skipped["vendored"] == 5
    assert why["vendor"] == why["web/node_modules"] == why["cpp/third_party"] == "vendored"


def test_an_explicit_negation_brings_a_vendored_directory_back(tmp_path):
    _tree(tmp_path, {".msaignore": "!vendor/\n", "vendor/lib/util.py": "x = 1\n", "app.py": "y = 2\n"})
    assert _walk(tmp_path)[0] == ["app.py", "vendor/lib/util.py"]


def test_generated_files_by_name_and_by_first_lines(tmp_path):
    _tree(
        tmp_path,
        {
            "app.js": "export const a = 1;\n",
            "app.min.js": "var a=1;\n",
            "api/api.pb.go": "package api\n",
            "api/msg_pb2.py": "x = 1\n",
            "web/package-lock.json": "{}\n",
            "gen/models.go": "// Code generated by sqlc. DO NOT EDIT.\n// versions:\n\npackage gen\n",
            "gen/schema.ts": "/* eslint-disable */\n// @generated by a tool\nexport type A = 1;\n",
            "db/migrations/0001_initial.py": "# Generated by Django 4.2 on 2024-01-01 00:00\n\nfrom django.db import migrations\n",
            "dist/bundle.js": "!function(){" + "var a=1;" * 400 + "}();\n",  # one 3 KB line: minified
            "lib/_version.py": "# file generated by setuptools-scm\n__version__ = '1.0'\n",
            # Saying "generated" about something else is not a marker.
            "reports.py": '"""Reports generated by the nightly job."""\n\ndef run():\n    return 1\n',
            "complete.rs": "/*!\nCompletions, maintained by hand: better than the ones\nbelow that are auto-generated.\n*/\nfn a() {}\n",
            "gen.py": '"""Generated SQL helpers."""\n\ndef q():\n    return 1\n',
            # Contracts and prose are never looked into.
            "terms.md": "DO NOT EDIT: signed copy.\n\n# Terms\n",
        },
    )
    got, skipped, why = _walk(tmp_path)
    assert got == ["app.js", "complete.rs", "gen.py", "reports.py", "terms.md"]
    assert skipped["generated"] == 9
    assert why["gen/models.go"] == why["dist/bundle.js"] == why["api/msg_pb2.py"] == "generated"


def test_binary_oversized_and_unsupported_are_counted(tmp_path):
    _tree(
        tmp_path,
        {
            "real.py": "x = 1\n",
            "fake.py": b"\x7fELF\x02\x01\x01\x00\x00\x00binary payload",  # a .py that is really binary
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "blob.dat": b"\x00\x01",
            "big.md": "# Big\n\n" + "word " * 400,  # 2 KB
            "big.csv": "timestamp,sensor,v\n" + "2024-01-01T00:00:00Z,s,1\n" * 120,  # 3 KB log: bulk allowance
            "huge.csv": "timestamp,sensor,v\n" + "2024-01-01T00:00:00Z,s,1\n" * 3000,  # 75 KB: too big even so
            "data.weird": "{\"k\":[1,2,3],\"v\":\"x\"}" * 30,  # one long minified line: not prose, not ingested
        },
    )
    got, skipped, why = _walk(tmp_path, max_bytes=1000)
    assert got == ["big.csv", "real.py"]
    assert why == {
        "fake.py": "binary",
        "logo.png": "binary",
        "blob.dat": "binary",
        "big.md": "oversized",
        "huge.csv": "oversized",
        "data.weird": "unsupported",
    }
    assert skipped == Counter(binary=3, oversized=2, unsupported=1)
    assert _walk(tmp_path)[0] == ["big.csv", "big.md", "huge.csv", "real.py"]  # default limit: 2 MB
    with pytest.raises(SourceError, match="fake.py: not ingestible"):  # parse_file refuses it, no crash
        parse_file(tmp_path / "fake.py", tmp_path)
    with pytest.raises(ValueError):
        list(walk(tmp_path, max_bytes=0))


def test_symlink_loops_and_links_out_of_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _tree(tmp_path, {"outside/secret.md": "# outside", "root/a/z.py": "x = 1\n", "root/b.md": "# b"})
    os.symlink(root, root / "a" / "loop")  # back to the root: a loop
    os.symlink(root / "a", root / "a" / "self")  # to its own directory
    os.symlink(outside, root / "out")
    os.symlink(outside / "secret.md", root / "secret.md")
    os.symlink(root / "missing", root / "broken.md")
    os.symlink(root / "a", root / "0_alias")  # inside root: the real path wins, whatever the sort order
    os.symlink(root / "c1", root / "c2")
    os.symlink(root / "c2", root / "c1")  # a cycle of links
    got, skipped, why = _walk(root)
    assert got == ["a/z.py", "b.md"]
    assert why["0_alias"] == "duplicate"
    for link in ("a/loop", "a/self", "out", "secret.md", "broken.md", "c1", "c2"):
        assert why[link] == "symlink", link
    # A link inside root to a directory that is itself not walked is followed.
    _tree(root, {".gitignore": "/hidden_by_git/\n", "hidden_by_git/n.md": "# n"})
    os.symlink(root / "hidden_by_git", root / "shown")
    assert "shown/n.md" in _walk(root)[0]


def test_single_file_root_and_counter_optional(tmp_path):
    _tree(tmp_path, {"a.py": "x = 1\n", "b.min.js": "var a;\n"})
    assert list(walk(tmp_path / "a.py")) == [tmp_path / "a.py"]
    assert [p.name for p in walk(tmp_path)] == ["a.py"]  # no counter: same files
