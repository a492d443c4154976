"""Reader examples from real text: parsed records, answers that are spans of the shown evidence,
negatives whose subject is genuinely absent, and packages split between train and validation."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from msa_agent.reading import ABSTAIN
from msa_agent.train import real_data as R

CHANGELOG = """\
{pkg} (2.1-1) unstable; urgency=high

  * New upstream release.
  * Fix heap overflow in the parser (CVE-2024-{n}0001). Closes: #10{n}01.
  * Fix use after free in the decoder (CVE-2024-{n}0002).

 -- Ada Quill <ada@example.org>  Mon, 0{d} Jan 2024 12:00:00 +0100

{pkg} (2.0-3) bookworm; urgency=medium

  * Build with hardening flags.
    Closes: #10{n}02.

 -- Bo Tern <bo@example.org>  Sat, 1{d} Dec 2023 16:40:30 +0100

{pkg} (2.0-2) unstable; urgency=low

  * Document the --frobnicate option in the manual page.

 -- Ada Quill <ada@example.org>  Fri, 2{d} Oct 2023 10:34:28 +0200
"""

STATUS = """\
Package: {pkg}
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 1{n}34
Maintainer: Util Team <util@example.org>
Architecture: amd64
Version: 1.{n}-2
Depends: libc6 (>= 2.34), zlib1g, libfoo{n}
Description: frobnicator number {n} for the command line
 A long description line.
Homepage: https://example.org/{pkg}

"""


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    docs = tmp_path / "doc"
    names = [f"frob{i}" for i in range(30)]
    for i, name in enumerate(names):
        (docs / name).mkdir(parents=True)
        text = CHANGELOG.format(pkg=name, n=i % 10, d=i % 10)
        (docs / name / "changelog.Debian.gz").write_bytes(gzip.compress(text.encode()))
    (docs / "tzdata").mkdir()
    (docs / "tzdata" / "changelog.Debian.gz").write_bytes(gzip.compress(CHANGELOG.format(pkg="tzdata", n=1, d=1).encode()))
    (docs / "broken").mkdir()
    (docs / "broken" / "changelog.Debian.gz").write_bytes(b"not gzip")
    status = tmp_path / "status"
    status.write_text("".join(STATUS.format(pkg=n, n=i % 10) for i, n in enumerate(names)))
    monkeypatch.setattr(R, "excluded_packages", lambda: {"frob0"})
    out = tmp_path / "real.json.gz"
    R.save(R.collect(docs, status), out)
    return out


def test_parse_changelog_entries() -> None:
    entries = R.parse_changelog(CHANGELOG.format(pkg="frob", n=3, d=3), "/usr/share/doc/frob/changelog.Debian")
    assert [e.version for e in entries] == ["2.1-1", "2.0-3", "2.0-2"]
    first = entries[0]
    assert (first.dist, first.urgency, first.who, first.date) == ("unstable", "high", "Ada Quill", "Mon, 03 Jan 2024 12:00:00 +0100")
    assert first.first_line == 1 and entries[1].first_line == 9
    assert "Fix use after free in the decoder (CVE-2024-30002)." in first.bullets()


def test_parse_status_records() -> None:
    (rec,) = R.parse_status(STATUS.format(pkg="frob", n=4))
    assert rec.pkg == "frob" and rec.fields["Version"] == "1.4-2" and rec.fields["Installed-Size"] == "1434"
    assert R._depends(rec) == ["libc6", "zlib1g", "libfoo4"]


def test_collect_leaves_out_excluded_and_unreadable(corpus: Path) -> None:
    entries, records = R.load(corpus)
    pkgs = {e.pkg for e in entries} | {r.pkg for r in records}
    assert "frob0" not in pkgs and "tzdata" not in pkgs and "broken" not in pkgs
    assert len({e.pkg for e in entries}) == 29


@pytest.mark.parametrize("split", ["train", "val"])
def test_examples_are_grounded_and_negatives_absent(corpus: Path, split: str) -> None:
    exs = R.real_examples(random.Random(7), 300, split, corpus)
    assert len(exs) >= 150
    val_pkgs = {n for n in (f"frob{i}" for i in range(30)) if R._is_val(n)}
    for ex in exs:
        if ex.answerable:
            gold = ex.docs[ex.gold].text
            for part in ex.answer.split(", "):
                assert part in gold, (ex.question, ex.answer)
        else:
            assert ex.answer == ABSTAIN
            subject = ex.question
            # the asked version, CVE or package is nowhere in what is shown
            shown = "\n".join(d.text for d in ex.docs)
            asked = [w.strip("?\"") for w in subject.split() if any(c.isdigit() for c in w) or w.startswith("frob")]
            assert any(w not in shown for w in asked), ex.question
        if ex.answerable:
            asked_pkg = ex.docs[ex.gold].path.split("/")[-2] if "changelog" in ex.docs[ex.gold].path else None
            if asked_pkg:
                assert (asked_pkg in val_pkgs) == (split == "val")
    kinds = {ex.kind for ex in exs}
    assert {"date", "cve_version", "version"} <= kinds, sorted(kinds)
    assert sum(not ex.answerable for ex in exs) >= 20


def test_train_and_validation_packages_are_disjoint(corpus: Path) -> None:
    entries, _ = R.load(corpus)
    train = {e.pkg for e in entries if not R._is_val(e.pkg)}
    val = {e.pkg for e in entries if R._is_val(e.pkg)}
    assert train and not train & val


def test_training_run_with_real_text_on_cpu(tiny_model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    """The CPU smoke test of the training pipeline with the real-text share in its mix."""
    import torch

    from msa_agent.model.tokenizer import Tokenizer
    from msa_agent.model.weights import load_model
    from msa_agent.train.reader import ReaderTrainConfig, train_reader
    from msa_agent.train.reader_data import Mix

    cfg = ReaderTrainConfig(examples=60, val_per_domain=2, batch_tokens=2048, max_steps=2, mem_every=0,
                            max_code_files=30, max_new_tokens=4, log_every=1, warmup=1,
                            mix=Mix.parse("contracts=0.3,code=0.2,real=0.4"), real_corpus=corpus)
    rec = train_reader(load_model(tiny_model_dir, dtype=torch.float32), Tokenizer(tiny_model_dir), cfg, tmp_path / "out",
                       model_dir=tiny_model_dir, log=lambda m: None)
    assert rec["steps"] == 2
    assert rec["data"]["by_domain"].get("changelogs", 0) > 0 and rec["data"]["by_domain"].get("packages", 0) > 0
    assert rec["data"]["unanswerable_by_domain"].get("changelogs", 0) > 0
