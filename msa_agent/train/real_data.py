"""Reader training examples from real text: Debian changelog entries and dpkg package records.

The template generators of `reader_data` invent every document, so the reader learned their
wording: a question whose words were not the evidence's got "Not stated." (issue #14). Here the
documents are real records written by other people (`/usr/share/doc/*/changelog.Debian.gz`,
`/var/lib/dpkg/status`), and the questions are asked the way a user asks them, with relation
words the evidence does not contain ("When did bash 5.2-3 come out?" over a changelog trailer).
Unanswerable questions are made from genuine absence: the same kind of record, shown without
the one the question is about, so abstention is learned from a missing fact, not from wording.

A corpus is collected once (`collect`, or `msa train real-corpus` to a file that travels to the
GPU machine) and examples are drawn from it by seed. Packages are split train/validation by a
hash of their name. Never collected: the real-document dev set's packages (`bench/devset`: its
logs and the changelogs it holds) and the held-out sources (`/usr/share/doc/*/copyright`, man
pages, `/usr/share/common-licenses`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from msa_agent.reading import ABSTAIN

from .reader_data import Doc, Example, _pick_template, _with_distractors

DOC_ROOT = Path("/usr/share/doc")
STATUS = Path("/var/lib/dpkg/status")
MAX_ENTRIES = 40  # newest entries kept per changelog
# The dev set's documents (bench/devset/corpus/logs): never trained on, nor the packages they name.
DEVSET_LOGS = Path(__file__).resolve().parents[2] / "bench" / "devset" / "corpus" / "logs"
_ALWAYS_SKIP = ("postgresql", "tzdata", "marshmallow")

_HEAD = re.compile(r"^(?P<pkg>[a-z0-9][a-z0-9+.-]+) \((?P<ver>[^)\s]+)\) (?P<dist>[^;]+); .*urgency=(?P<urg>\w+)", re.I)
_TRAIL = re.compile(r"^ -- (?P<who>[^<]+?) <(?P<mail>[^>]+)>\s+(?P<date>\w{3}, +\d{1,2} \w{3} \d{4} [\d:]+ [+-]\d{4})")
_CVE = re.compile(r"CVE-\d{4}-\d{4,7}")
_BUG = re.compile(r"#(\d{5,7})")


@dataclass
class Entry:
    """One changelog entry, as its lines appear in the file."""

    pkg: str
    version: str
    dist: str
    urgency: str
    who: str
    date: str
    lines: list[str]
    path: str
    first_line: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def bullets(self) -> list[str]:
        """Top-level "* ..." items, continuation lines joined."""
        out: list[str] = []
        for line in self.lines[1:]:
            s = line.strip()
            if s.startswith("* "):
                out.append(s[2:].strip())
            elif out and s and not s.startswith(("--", "[", "- ")) and line.startswith("    "):
                out[-1] += " " + s
        return [b for b in out if 12 <= len(b) <= 160]

    def bullet_heads(self) -> list[str]:
        """Each item's first line as it stands in the file (a span an answer can copy)."""
        return [ln.strip()[2:].strip() for ln in self.lines[1:] if ln.strip().startswith("* ") and len(ln.strip()) > 14]


@dataclass
class Record:
    """One dpkg status stanza."""

    fields: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def pkg(self) -> str:
        return self.fields["Package"]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# ---- collecting ---------------------------------------------------------------------------------


def excluded_packages() -> set[str]:
    """Package names the dev set's logs mention (a package seen there is never trained on)."""
    names: set[str] = set()
    if DEVSET_LOGS.is_dir():
        for p in DEVSET_LOGS.iterdir():
            names |= set(re.findall(r"\b([a-z0-9][a-z0-9+.-]{1,60})(?=[ :(])", p.read_text(errors="replace")))
    return names


def _skip(pkg: str, excluded: set[str]) -> bool:
    return pkg in excluded or any(pkg.startswith(s) for s in _ALWAYS_SKIP)


def parse_changelog(text: str, path: str, max_entries: int = MAX_ENTRIES) -> list[Entry]:
    out: list[Entry] = []
    head: tuple[int, re.Match] | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if m := _HEAD.match(line):
            head = (i, m)
        elif head and (t := _TRAIL.match(line)):
            i0, h = head
            out.append(Entry(h["pkg"], h["ver"], h["dist"].strip(), h["urg"], t["who"].strip(), t["date"],
                             [ln.rstrip() for ln in lines[i0:i + 1]], path, i0 + 1))
            head = None
            if len(out) >= max_entries:
                break
    return out


def parse_status(text: str) -> list[Record]:
    out: list[Record] = []
    for stanza in text.split("\n\n"):
        lines = [ln for ln in stanza.splitlines() if ln.strip()]
        if not lines:
            continue
        fields: dict[str, str] = {}
        key = ""
        for ln in lines:
            if ln[:1] in " \t" and key:
                continue  # long description and conffiles: kept in the text, not as fields
            key, _, value = ln.partition(":")
            fields[key] = value.strip()
        if "Package" in fields and "Version" in fields:
            out.append(Record(fields, [ln for ln in lines if not ln.startswith((" /", "Conffiles:"))][:14]))
    return out


def collect(doc_root: Path = DOC_ROOT, status: Path = STATUS) -> dict:
    """{"entries": [...], "records": [...]}: every readable changelog and the dpkg status file of
    this machine, less the excluded packages."""
    excluded = excluded_packages()
    entries: list[Entry] = []
    for p in sorted(doc_root.glob("*/changelog.Debian.gz")):
        if _skip(p.parent.name, excluded):
            continue
        try:
            text = gzip.decompress(p.read_bytes()).decode("utf-8", "replace")
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        entries += [e for e in parse_changelog(text, f"/usr/share/doc/{p.parent.name}/changelog.Debian")
                    if not _skip(e.pkg, excluded)]
    records: list[Record] = []
    if status.is_file():
        records = [r for r in parse_status(status.read_text(errors="replace")) if not _skip(r.pkg, excluded)]
    return {"entries": [e.__dict__ for e in entries], "records": [{"fields": r.fields, "lines": r.lines} for r in records]}


def save(corpus: dict, path: Path) -> str:
    """Write the corpus as gzip JSON; returns its digest."""
    data = json.dumps(corpus, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0))
    return hashlib.sha256(data).hexdigest()[:16]


def load(path: Path | None) -> tuple[list[Entry], list[Record]]:
    corpus = json.loads(gzip.decompress(path.read_bytes())) if path else collect()
    return [Entry(**e) for e in corpus["entries"]], [Record(r["fields"], r["lines"]) for r in corpus["records"]]


def _is_val(pkg: str) -> bool:
    return int(hashlib.sha256(pkg.encode()).hexdigest(), 16) % 10 == 0


# ---- questions ----------------------------------------------------------------------------------
# Training sees all but the last template of each list, validation only the last (`_pick_template`).

_Q_DATE = ("When was {pkg} {ver} released?", "On what date was the {pkg} {ver} changelog entry signed?",
           "When did version {ver} of {pkg} come out?", "What is the timestamp of the {pkg} {ver} upload?",
           "When was the {ver} release of {pkg} finalised?", "What date is given for {pkg} version {ver}?")
_Q_WHO = ("Who uploaded {pkg} {ver}?", "Who signed off the {ver} entry in the {pkg} changelog?",
          "Which person prepared version {ver} of {pkg}?", "Who is named as the maintainer responsible for {pkg} {ver}?",
          "Whose name is on the {pkg} {ver} release?")
_Q_DIST = ("Which distribution was {pkg} {ver} uploaded to?", "What suite was {pkg} {ver} targeted at?",
           "For which Debian release was {pkg} {ver} built?", "Into which distribution did {pkg} {ver} go?")
_Q_URG = ("How urgent was the {pkg} {ver} upload?", "What urgency did {pkg} {ver} have?",
          "With what priority was version {ver} of {pkg} uploaded?", "How pressing was the {pkg} {ver} update marked?")
_Q_CVE_VER = ("Which {pkg} version fixed {cve}?", "In which release of {pkg} was {cve} addressed?",
              "Which version of {pkg} patches the {cve} vulnerability?", "What {pkg} upload dealt with {cve}?",
              "Since which {pkg} version is {cve} resolved?")
_Q_BUG_VER = ("Which version of {pkg} closed bug #{bug}?", "In which {pkg} release was Debian bug {bug} fixed?",
              "What {pkg} version resolved bug report #{bug}?", "Bug #{bug} in {pkg} was closed by which upload?")
_Q_CVES = ("Which CVEs does {pkg} {ver} fix?", "List the CVE identifiers cited in the {pkg} {ver} entry.",
           "What vulnerabilities (CVE numbers) were addressed in {pkg} {ver}?",
           "Which security issues by CVE id does the {ver} upload of {pkg} mention?")
_Q_CHANGE = ("What did {pkg} {ver} change?", "What was the change made in {pkg} version {ver}?",
             "Describe the update that {pkg} {ver} brought.", "What does the changelog say {pkg} {ver} did?")
_Q_DATE_OF_CVE = ("When was the {pkg} release that fixed {cve} signed?", "On what date did the {pkg} fix for {cve} ship?",
                  "When was {cve} fixed in {pkg}?", "What is the date of the {pkg} upload that addresses {cve}?")
_Q_WHO_OF_CVE = ("Who uploaded the {pkg} version that fixed {cve}?", "Who prepared the {pkg} fix for {cve}?",
                 "Which maintainer shipped the {pkg} release addressing {cve}?")
_Q_VER_OF_CHANGE = ("Which {pkg} version made this change: {change}?", "In which release of {pkg} did this happen: {change}?",
                    "What version of {pkg} is this change from: {change}?")

_R_VERSION = ("Which version of {pkg} is installed?", "What {pkg} release is on this machine?",
              "Which {pkg} build does the package database list?", "What version number does the {pkg} package have here?",
              "Which release of {pkg} is currently set up?")
_R_SIZE = ("How much disk space does {pkg} take once installed, in KB?", "What is the installed size of {pkg}?",
           "How many kilobytes does the {pkg} package occupy?", "How big is {pkg} on disk after installation?")
_R_MAINT = ("Who maintains the {pkg} package?", "Who looks after {pkg} in Debian?", "Which team or person is responsible for {pkg}?",
            "Who is the {pkg} maintainer?")
_R_HOME = ("Where is the upstream website of {pkg}?", "What is {pkg}'s homepage?", "Which URL is given as the home of {pkg}?",
           "Where can I find the project page for {pkg}?")
_R_SECTION = ("Which section is {pkg} filed under?", "In what archive section does {pkg} live?",
              "What category does the {pkg} package belong to?")
_R_SOURCE = ("Which source package builds {pkg}?", "What is the source package of {pkg}?",
             "{pkg} is built from which source?")
_R_ARCH = ("For which architecture is {pkg} installed?", "What architecture is the {pkg} package?",
           "Which CPU architecture does the installed {pkg} target?")
_R_BYDESC = ("Which package is described as \"{desc}\"?", "Which installed package provides {desc}?",
             "What package's summary reads \"{desc}\"?", "Name the package whose short description is: {desc}")
_R_DEPENDS = ("Which packages does {pkg} depend on?", "What are the dependencies of {pkg}?",
              "List what {pkg} requires to be installed.", "What must be installed for {pkg} to work?")


def _entry_doc(es: list[Entry]) -> Doc:
    """Consecutive entries of one changelog as one document, anchored by their line range."""
    a = es[0].first_line
    b = es[-1].first_line + len(es[-1].lines) - 1
    return Doc(es[0].path, f"lines {a}-{b}", "\n\n".join(e.text for e in es))


def _window(rng: random.Random, entries: list[Entry], i: int) -> list[Entry]:
    """Entry i with up to two neighbours of the same file on either side (it may fall anywhere)."""
    lo = max(0, i - rng.randint(0, 2))
    hi = min(len(entries), i + 1 + rng.randint(0, 2))
    win = entries[lo:hi]
    return [e for e in win if e.path == entries[i].path]


def _cve_list(e: Entry) -> list[str]:
    return list(dict.fromkeys(_CVE.findall(e.text)))


def changelog_examples(rng: random.Random, entries: list[Entry], n: int, split: str, neg_rate: float = 0.2) -> list[Example]:
    """Questions about one entry of a window of consecutive entries; negatives ask about a
    version, CVE or bug of the same package that the window does not show."""
    pool = [i for i, e in enumerate(entries) if _is_val(e.pkg) == (split == "val")]
    if not pool:
        return []
    by_pkg: dict[str, list[Entry]] = {}
    for e in entries:
        by_pkg.setdefault(e.pkg, []).append(e)
    all_cves = [c for e in entries for c in _CVE.findall(e.text)]
    out: list[Example] = []
    tries = 0
    while len(out) < n and tries < n * 20:
        tries += 1
        i = rng.choice(pool)
        e = entries[i]
        win = _window(rng, entries, i)
        doc = _entry_doc(win)
        shown = doc.text
        ctx = {"pkg": e.pkg, "ver": e.version}
        if rng.random() < neg_rate:
            ex = _changelog_negative(rng, e, win, by_pkg, all_cves, split, doc)
            if ex:
                out.append(ex)
            continue
        cves = _cve_list(e)
        bugs = list(dict.fromkeys(_BUG.findall(e.text)))
        bullets = e.bullets()
        options: list[tuple[tuple[str, ...], dict, str, str]] = [
            (_Q_DATE, ctx, e.date, "date"), (_Q_WHO, ctx, e.who, "who"),
            (_Q_DIST, ctx, e.dist, "dist"), (_Q_URG, ctx, e.urgency, "urgency")]
        if cves:
            cve = rng.choice(cves)
            options += [(_Q_CVE_VER, {"pkg": e.pkg, "cve": cve}, e.version, "cve_version")] * 3
            options += [(_Q_DATE_OF_CVE, {"pkg": e.pkg, "cve": cve}, e.date, "cve_date")] * 2
            options += [(_Q_WHO_OF_CVE, {"pkg": e.pkg, "cve": cve}, e.who, "cve_who")]
            if len(cves) > 1:
                options += [(_Q_CVES, ctx, ", ".join(cves), "cve_list")] * 2
        if bugs:
            options += [(_Q_BUG_VER, {"pkg": e.pkg, "bug": rng.choice(bugs)}, e.version, "bug_version")] * 2
        heads = e.bullet_heads()
        if len(heads) == 1:
            options += [(_Q_CHANGE, ctx, heads[0], "change")] * 2
        if bullets:
            b = rng.choice(bullets)
            change = re.sub(r"\s*\(?Closes:[^)]*\)?\.?|\s*\(CVE-[^)]*\)", "", b).strip(" .")
            if len(change) > 12 and all(change not in x.text for x in win if x is not e):
                options += [(_Q_VER_OF_CHANGE, {"pkg": e.pkg, "change": change[:1].lower() + change[1:] if change[1:2].islower() else change}, e.version, "change_version")]
        templates, fmt, answer, kind = rng.choice(options)
        if kind == "date" and shown.count(answer) > 1:
            continue  # two entries of the window signed at the same minute: the question is ambiguous
        q = _pick_template(rng, list(templates), split).format(**fmt)
        others = [x for x in entries if x.pkg != e.pkg]
        out.append(_with_distractors(rng, Example(q, answer, [doc], 0, "changelogs", kind),
                                     lambda: _entry_doc(_window(rng, others, rng.randrange(len(others)))), p=0.3))
    return out[:n]


def _changelog_negative(rng: random.Random, e: Entry, win: list[Entry], by_pkg: dict[str, list[Entry]],
                        all_cves: list[str], split: str, doc: Doc) -> Example | None:
    shown = doc.text
    hidden = [x for x in by_pkg[e.pkg] if x not in win and x.version not in shown]
    choice = rng.random()
    if hidden and choice < 0.5:
        h = rng.choice(hidden)
        templates = rng.choice((_Q_DATE, _Q_WHO, _Q_CHANGE))
        q = _pick_template(rng, list(templates), split).format(pkg=e.pkg, ver=h.version)
        return Example(q, ABSTAIN, [doc], None, "changelogs", "absent_version")
    cve = rng.choice(all_cves) if all_cves else None
    if cve and cve not in shown:
        templates = rng.choice((_Q_CVE_VER, _Q_DATE_OF_CVE))
        return Example(_pick_template(rng, list(templates), split).format(pkg=e.pkg, cve=cve), ABSTAIN, [doc], None,
                       "changelogs", "absent_cve")
    return None


def _record_doc(rs: list[Record]) -> Doc:
    return Doc("/var/lib/dpkg/status", f"packages {rs[0].pkg} to {rs[-1].pkg}", "\n\n".join(r.text for r in rs))


def _depends(r: Record) -> list[str]:
    names = [re.split(r"[\s(:]", d.strip())[0] for d in r.fields.get("Depends", "").split(",")]
    return [d for d in names if d]


def record_examples(rng: random.Random, records: list[Record], n: int, split: str, neg_rate: float = 0.2) -> list[Example]:
    """Questions about one record among 2-5 neighbouring records; negatives ask about a package
    that is not among them."""
    pool = [i for i, r in enumerate(records) if _is_val(r.pkg) == (split == "val")]
    if not pool:
        return []
    descs = {}
    for r in records:
        descs.setdefault(r.fields.get("Description", ""), []).append(r.pkg)
    out: list[Example] = []
    while len(out) < n:
        i = rng.choice(pool)
        lo = max(0, i - rng.randint(0, 3))
        win = records[lo:min(len(records), i + 1 + rng.randint(0, 2))]
        r = records[i]
        doc = _record_doc(win)
        if rng.random() < neg_rate:
            absent = rng.choice(records).pkg
            if all(absent not in x.text for x in win):
                templates = rng.choice((_R_VERSION, _R_MAINT, _R_SIZE, _R_HOME))
                out.append(Example(_pick_template(rng, list(templates), split).format(pkg=absent), ABSTAIN, [doc], None,
                                   "packages", "absent_package"))
            continue
        f = r.fields
        options: list[tuple[tuple[str, ...], dict, str, str]] = [(_R_VERSION, {"pkg": r.pkg}, f["Version"], "version")] * 2
        if f.get("Installed-Size"):
            options.append((_R_SIZE, {"pkg": r.pkg}, f["Installed-Size"], "size"))
        if m := re.match(r"([^<]+?)\s*<", f.get("Maintainer", "")):
            options.append((_R_MAINT, {"pkg": r.pkg}, m[1], "maintainer"))
        if f.get("Homepage"):
            options.append((_R_HOME, {"pkg": r.pkg}, f["Homepage"], "homepage"))
        if f.get("Section"):
            options.append((_R_SECTION, {"pkg": r.pkg}, f["Section"], "section"))
        if f.get("Source"):
            options.append((_R_SOURCE, {"pkg": r.pkg}, f["Source"].split()[0], "source"))
        if f.get("Architecture"):
            options.append((_R_ARCH, {"pkg": r.pkg}, f["Architecture"], "arch"))
        d = f.get("Description", "")
        if 12 <= len(d) <= 90 and len(descs.get(d, [])) == 1:
            desc = d[:1].lower() + d[1:] if d[1:2].islower() else d
            options += [(_R_BYDESC, {"desc": desc}, r.pkg, "by_description")] * 2
        deps = _depends(r)
        if 2 <= len(deps) <= 6:
            options.append((_R_DEPENDS, {"pkg": r.pkg}, ", ".join(deps), "depends"))
        templates, fmt, answer, kind = rng.choice(options)
        q = _pick_template(rng, list(templates), split).format(**fmt)
        out.append(Example(q, answer, [doc], 0, "packages", kind))
    return out[:n]


def real_examples(rng: random.Random, n: int, split: str, corpus: Path | None = None) -> list[Example]:
    """`n` examples, about two thirds from changelogs and one third from package records."""
    entries, records = load(corpus)
    out = changelog_examples(rng, entries, (2 * n) // 3, split)
    out += record_examples(rng, records, n - len(out), split)
    return out
