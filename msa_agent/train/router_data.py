"""Offline training pairs for the MSA router: (question, the memory document that answers it).

Every document is what `msa ingest` would store (msa's own parsers cut the files), so the router
learns on the documents it will route over. Sources, all made on the machine that trains:

- code and package docs from the installed third-party packages (site-packages; never the Python
  standard library, and never licence or copyright files, which overlap held-out data):
  docstring → its code (docstring mostly removed), removed comment or sentence → its document
  (inverse cloze), "where is NAME defined / which code raises E / what is CONSTANT set to";
- synthetic contracts from clause templates with random parties, dates, amounts, part numbers:
  "which agreement / clause ..." questions in other words than the clause's;
- synthetic sensor logs (CSV) with random sensors, sites, events and part numbers;
- needles: one fact sentence naming a rare key ("The access code for amber-quill is 4817263.")
  inserted at a random place in about 1,200-2,400 characters of unrelated prose (sentences of the
  third-party packages' docs and docstrings, never those of the evaluation haystack's packages
  `msa_agent.evals.haystack.PROSE_PACKAGES`), asked about by its key ("what is the access code
  for amber-quill?"). A needle group's documents share one fact template with different keys, so
  in-batch and hard negatives differ only in the key: the router must match the key inside a
  chunk mean of mostly filler, which code, contract and log pairs never teach (the 100M bench's
  RULER needles routed at 0% without them).

Held out for validation: whole packages, and for contracts, logs and needle groups whole files
(groups) plus one question template per clause, event or fact kind that training never sees (for
needles, RULER's own "special magic number" wording). Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import site
import sysconfig
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

TEXT_EXTS = {".md", ".rst", ".txt"}
CODE_EXTS = {".py"}
# Licence and copyright texts resemble the held-out /usr/share/common-licenses and
# /usr/share/doc/*/copyright: never trained on.
_EXCLUDED_NAME = re.compile(r"(licen[cs]e|copying|copyright|notice|authors|patents)", re.IGNORECASE)
_EXCLUDED_DIR = re.compile(r"(\.dist-info|\.egg-info|__pycache__|^msa_agent$|^_?msa)")


@dataclass
class Doc:
    text: str
    path: str
    kind: str
    group: str  # package, contract file or log file: pairs of one group make hard negatives


@dataclass
class Pair:
    question: str
    doc: int  # index of the positive document
    group: str
    task: str


@dataclass
class RouterData:
    docs: list[Doc] = field(default_factory=list)
    train: list[Pair] = field(default_factory=list)
    val: list[Pair] = field(default_factory=list)

    def summary(self) -> dict:
        tasks: dict[str, int] = defaultdict(int)
        for p in self.train:
            tasks[p.task] += 1
        vtasks: dict[str, int] = defaultdict(int)
        for p in self.val:
            vtasks[p.task] += 1
        return {"documents": len(self.docs), "train_pairs": len(self.train), "val_pairs": len(self.val),
                "train_tasks": dict(sorted(tasks.items())), "val_tasks": dict(sorted(vtasks.items()))}


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


# ---- paraphrase ----------------------------------------------------------------------------------

_SYNONYMS = {
    "return": ["give back", "produce", "yield"], "returns": ["gives back", "produces"], "get": ["fetch", "obtain"],
    "create": ["make", "build"], "creates": ["makes", "builds"], "compute": ["calculate", "work out"],
    "computes": ["calculates", "works out"], "check": ["verify", "test"], "checks": ["verifies", "tests"],
    "convert": ["turn", "transform"], "converts": ["turns", "transforms"], "list": ["sequence"],
    "file": ["document"], "value": ["number"], "values": ["numbers"], "function": ["routine"],
    "object": ["instance"], "remove": ["delete", "drop"], "removes": ["deletes", "drops"], "set": ["assign"],
    "load": ["read"], "loads": ["reads"], "save": ["write", "store"], "start": ["begin"], "stop": ["end", "halt"],
    "error": ["failure", "problem"], "use": ["employ"], "used": ["employed"], "given": ["supplied", "passed"],
    "number": ["count"], "data": ["information"], "new": ["fresh"], "default": ["fallback"],
}
_STOP = {"the", "a", "an", "of", "to", "is", "are", "and", "or", "in", "on", "for", "this", "that", "be", "it",
         "with", "as", "by", "at", "from"}
_WRAP = ["{s}", "{s}?", "where is the code that says {s}", "find where {s}", "which part explains that {s}",
         "I need the place where {s}", "{s} — where is that?", "look up: {s}"]


def paraphrase(text: str, rng: random.Random, *, wrap: bool = True) -> str:
    """A noisy rewording: synonyms, some small words dropped, a question wrapper. Names, numbers
    and identifiers are kept as they are (they are what a user would type)."""
    words = text.split()
    out = []
    for w in words:
        low = w.lower().strip(".,;:")
        if low in _STOP and rng.random() < 0.35:
            continue
        if low in _SYNONYMS and rng.random() < 0.5 and w.isalpha():
            out.append(rng.choice(_SYNONYMS[low]))
            continue
        out.append(w)
    s = " ".join(out or words).strip().rstrip(".")
    if s and s[0].isupper() and (len(s) < 2 or not s[1].isupper()):
        s = s[0].lower() + s[1:]
    return rng.choice(_WRAP).format(s=s) if wrap else s


def _clean_doc(s: str) -> str:
    s = re.sub(r":(param|type|rtype|returns?|raises?)[^:]*:", " ", s)
    s = re.sub(r"[`*]+", "", s)
    s = re.sub(r"\s+", " ", s).strip()
    return s


def _first_sentence(s: str, max_words: int = 28) -> str:
    s = _clean_doc(s)
    m = re.match(r"(.+?[.!?])(\s|$)", s)
    s = m.group(1) if m else s
    return " ".join(s.split()[:max_words])


# ---- third-party code and package docs -------------------------------------------------------------


def third_party_roots() -> list[Path]:
    """site-packages / dist-packages directories of this interpreter (never the standard library)."""
    cands = set()
    for fn in (site.getsitepackages, lambda: [site.getusersitepackages()]):
        try:
            cands.update(fn())
        except (AttributeError, TypeError):
            pass
    for key in ("purelib", "platlib"):
        cands.add(sysconfig.get_paths().get(key, ""))
    roots = []
    for c in sorted(cands):
        p = Path(c)
        if c and p.is_dir() and p.name in ("site-packages", "dist-packages"):
            roots.append(p.resolve())
    return sorted(set(roots))


def _package_files(roots: list[Path], max_files: int, per_package: int, seed: int) -> list[tuple[Path, Path, str]]:
    """(file, root, package) for source and doc files of third-party packages, sampled by seed."""
    by_pkg: dict[str, list[tuple[Path, Path]]] = defaultdict(list)
    for root in roots:
        for top in sorted(root.iterdir()):
            if not top.is_dir() or _EXCLUDED_DIR.search(top.name) or top.name.startswith((".", "_")):
                continue
            pkg = top.name
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if not _EXCLUDED_DIR.search(d) and not d.startswith("."))
                for f in sorted(filenames):
                    ext = os.path.splitext(f)[1].lower()
                    if ext not in CODE_EXTS and ext not in TEXT_EXTS:
                        continue
                    if _EXCLUDED_NAME.search(f):
                        continue
                    p = Path(dirpath) / f
                    try:
                        size = p.stat().st_size
                    except OSError:
                        continue
                    if 200 <= size <= 150_000:
                        by_pkg[pkg].append((p, root))
    rng = random.Random(seed)
    out: list[tuple[Path, Path, str]] = []
    for pkg in sorted(by_pkg):
        files = by_pkg[pkg]
        rng.shuffle(files)
        out += [(p, r, pkg) for p, r in files[:per_package]]
    rng.shuffle(out)
    return out[:max_files]


def _parse_one(args: tuple[str, str]) -> list[tuple[str, str, str, str]]:
    from msa_agent.ingest.base import SourceError
    from msa_agent.ingest.sources import parse_file

    path, root = args
    try:
        docs = parse_file(Path(path), Path(root), max_chars=2400)
    except (SourceError, ValueError, RecursionError, UnicodeError, OSError):
        return []
    return [(d.path, d.kind, d.title, d.text) for d in docs]


def parse_files(items: list[tuple[Path, Path]], workers: int) -> list[list[tuple[str, str, str, str]]]:
    """msa's own parser over many files, in worker processes when there are several cores."""
    args = [(str(p), str(r)) for p, r in items]
    if workers <= 1 or len(args) < 32:
        return [_parse_one(a) for a in args]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(_parse_one, args, chunksize=16)


_DOCSTRING = re.compile(r'(?s)("""|\'\'\')(.+?)\1')
_DEF = re.compile(r"^\s*(?:async\s+)?(def|class)\s+([A-Za-z_]\w*)", re.M)
_RAISE = re.compile(r"raise\s+([A-Z]\w*(?:Error|Exception|Warning))\(\s*f?([\"'])(.{12,90}?)\2")
_CONST = re.compile(r"^([A-Z][A-Z0-9_]{3,})\s*(?::\s*\w+\s*)?=\s*([^\n]{1,50})$", re.M)
_COMMENT = re.compile(r"^\s*#\s*([A-Za-z][^\n]{30,160})$", re.M)
_SENT = re.compile(r"(?<=[.!?])\s+")

_NAME_Q = ["Where is {name} defined?", "Which file implements {name} in {pkg}?", "show me the code of {name}",
           "{pkg}: where does {name} live?", "what does {name} do in {pkg}", "find the definition of {short}",
           "in which {pkg} module is {short} written?"]
_RAISE_Q = ["which {pkg} code raises {err} saying {msg}?", "where does {pkg} throw {err} about {msg}",
            "what raises a {err} when {msg}"]
_CONST_Q = ["what is {const} set to in {pkg}?", "which {pkg} module defines the constant {const}?",
            "default value of {const}"]
_TEXT_Q = ["which {pkg} document explains {s}", "{s}", "where in the {pkg} docs does it say {s}", "find: {s}"]


def _code_pairs(pkg: str, parsed: list[tuple[str, str, str, str]], rng: random.Random, docs: list[Doc],
                pairs: list[Pair]) -> None:
    for path, kind, title, text in parsed:
        if len(text) < 80:
            continue
        base = len(docs)
        docs.append(Doc(text, path, kind, pkg))
        made = 0
        if path.endswith(".py"):
            m = _DOCSTRING.search(text)
            if m and len(_clean_doc(m.group(2)).split()) >= 5:
                q = paraphrase(_first_sentence(m.group(2)), rng)
                if rng.random() < 0.7:  # the docstring taken out: the router must match the code itself
                    stripped = (text[: m.start()] + text[m.end():]).strip()
                    if len(stripped) > 60:
                        docs.append(Doc(stripped, path, kind, pkg))
                        pairs.append(Pair(q, len(docs) - 1, pkg, "docstring"))
                        made += 1
                else:
                    pairs.append(Pair(q, base, pkg, "docstring"))
                    made += 1
            names = [n for _, n in _DEF.findall(text)]
            name = title.split()[-1] if title else (names[0] if names else "")
            if name and rng.random() < 0.6:
                short = name.split(".")[-1]
                pairs.append(Pair(rng.choice(_NAME_Q).format(name=name, short=short, pkg=pkg), base, pkg, "name"))
                made += 1
            r = _RAISE.search(text)
            if r and rng.random() < 0.7:
                msg = paraphrase(re.sub(r"\{[^}]*\}", "", r.group(3)), rng, wrap=False)
                pairs.append(Pair(rng.choice(_RAISE_Q).format(pkg=pkg, err=r.group(1), msg=msg), base, pkg, "raise"))
                made += 1
            c = _CONST.search(text)
            if c and rng.random() < 0.5:
                pairs.append(Pair(rng.choice(_CONST_Q).format(const=c.group(1), pkg=pkg), base, pkg, "constant"))
                made += 1
            cm = _COMMENT.findall(text)
            if cm and (made == 0 or rng.random() < 0.3):
                line = rng.choice(cm)
                cut = text.replace(line, "", 1) if rng.random() < 0.9 else text
                docs.append(Doc(cut, path, kind, pkg))
                pairs.append(Pair(paraphrase(line, rng), len(docs) - 1, pkg, "cloze_comment"))
        else:
            sents = [s for s in _SENT.split(re.sub(r"\s+", " ", text)) if 6 <= len(s.split()) <= 40
                     and re.search(r"[a-z]{3}", s)]
            if sents:
                s = rng.choice(sents)
                cut = text.replace(s, "", 1) if rng.random() < 0.9 and s in text else text
                docs.append(Doc(cut, path, kind, pkg))
                q = rng.choice(_TEXT_Q).format(pkg=pkg, s=paraphrase(s, rng, wrap=False))
                pairs.append(Pair(q, len(docs) - 1, pkg, "cloze_text"))


# ---- synthetic contracts ------------------------------------------------------------------------------

_SYL = ["ka", "lo", "mir", "ten", "vas", "dor", "bel", "quin", "rho", "sa", "tur", "ven", "zel", "pra", "nox", "fil",
        "gan", "hev", "jor", "lum", "mar", "nel", "os", "pel", "ryn", "sid", "tav", "ul", "wex", "yar"]
_CO_SUFFIX = ["GmbH", "Ltd", "Inc.", "S.A.", "B.V.", "AG", "LLC", "Oy", "AB", "plc"]
_CITIES = ["Lisbon", "Graz", "Tampere", "Leeds", "Lyon", "Porto", "Ghent", "Bergen", "Turin", "Malmo", "Aarhus",
           "Brno", "Cork", "Bilbao", "Utrecht", "Krakow"]
_GOODS = ["hydraulic pumps", "control valves", "sensor modules", "gearboxes", "filter units", "servo drives",
          "cooling fans", "battery packs", "pressure gauges", "cable assemblies"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _name(rng: random.Random, n: int = 2) -> str:
    return "".join(rng.choice(_SYL) for _ in range(n)).capitalize()


def _company(rng: random.Random) -> str:
    return f"{_name(rng, rng.choice([2, 3]))} {rng.choice(['Industrial', 'Systems', 'Components', 'Energy', 'Logistics', 'Technik', 'Werke'])} {rng.choice(_CO_SUFFIX)}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(2019, 2027)}"


def _part(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHKLMNPRSTVX')}{rng.choice('ABCDEFGHKLMNPRSTVX')}-{rng.randint(1000, 99999)}-{rng.choice('ABCDEFGH')}"


# Each clause kind: heading, clause text, question templates (the last kept for validation only).
# Questions describe the clause in other words than its text; {a}/{b} are the parties' short names.
CLAUSES: dict[str, tuple[str, str, list[str]]] = {
    "term": ("Term",
             "This Agreement commences on {date} and continues for {years} years. {a} and {b} may extend it by written agreement.",
             ["How long does the deal between {a} and {b} run?", "when does the {a} contract with {b} start?",
              "what is the duration of the agreement {a} signed with {b}", "for how many years are {a} and {b} bound?"]),
    "termination": ("Termination",
                    "Either party may terminate this Agreement by giving {days} days' written notice. {a} may end it at once if {b} becomes insolvent.",
                    ["how much notice must {b} give to get out of the {a} agreement?", "can {a} walk away if {b} goes bankrupt?",
                     "exit rules in the contract of {a} and {b}", "what notice period applies to ending {a}'s contract with {b}?"]),
    "payment": ("Payment",
                "{b} shall pay {a} {amount} {cur} per {period}. Invoices are due within {days} days; late amounts bear interest at {rate}% a year.",
                ["how much does {b} owe {a} each {period}?", "what are the invoice terms between {a} and {b}",
                 "interest on overdue invoices from {a} to {b}", "what price does {b} pay {a}?"]),
    "liability": ("Limitation of Liability",
                  "The total liability of {a} under this Agreement shall not exceed {amount} {cur}, except for gross negligence or wilful misconduct.",
                  ["what is the cap on {a}'s damages towards {b}?", "maximum amount {a} can be held responsible for",
                   "liability ceiling in the {a} / {b} contract", "how much can {b} claim from {a} at most?"]),
    "parts": ("Products",
              "{a} supplies {goods} under part number {part}, at a minimum of {qty} units a quarter to {b}'s site in {city}.",
              ["which agreement covers part {part}?", "who supplies {goods} to {b}?",
               "what is the minimum quarterly volume of {part}", "where are the {part} units shipped?"]),
    "warranty": ("Warranty",
                 "{a} warrants the goods against defects for {months} months from delivery and shall repair or replace defective units within {days} days.",
                 ["how long is {a}'s guarantee on what it sells to {b}?", "defect repair time promised by {a}",
                  "what happens if {b} receives faulty goods from {a}?", "warranty period agreed between {a} and {b}"]),
    "confidentiality": ("Confidentiality",
                        "{a} and {b} shall keep confidential information secret for {years} years after this Agreement ends, save as required by law.",
                        ["how long must {a} and {b} keep secrets after the contract?", "non-disclosure obligations of {b} towards {a}",
                         "for how many years is information from {a} protected?", "secrecy period in the {a} {b} agreement"]),
    "law": ("Governing Law",
            "This Agreement is governed by the laws of {country}. Disputes between {a} and {b} go to the courts of {city}.",
            ["which country's law applies to the {a} contract with {b}?", "where would {a} and {b} litigate?",
             "jurisdiction for disputes involving {a} and {b}", "what courts handle a fight between {b} and {a}?"]),
    "insurance": ("Insurance",
                  "{a} shall maintain product liability insurance of at least {amount} {cur} with a reputable insurer and show the certificate to {b} each year.",
                  ["how much insurance cover must {a} carry for {b}?", "does {a} need to prove it is insured?",
                   "minimum insurance amount in the agreement of {a}", "policy requirements placed on {a} by {b}"]),
    "audit": ("Audit",
              "{b} may audit {a}'s records relating to this Agreement once every {months} months on {days} days' notice.",
              ["how often can {b} inspect {a}'s books?", "audit rights of {b} over {a}",
               "notice needed before {b} checks {a}'s records", "can {b} look at {a}'s accounts?"]),
}
_COUNTRIES = ["Portugal", "Austria", "Finland", "England and Wales", "France", "Belgium", "Norway", "Italy", "Sweden",
              "Denmark", "Czechia", "Ireland", "Spain", "the Netherlands", "Poland"]


def synthetic_contract(rng: random.Random) -> tuple[str, dict[str, dict]]:
    """A contract's text and, per clause kind, its values (to ask about it)."""
    A, B = _company(rng), _company(rng)
    a, b = A.split()[0], B.split()[0]
    kinds = rng.sample(sorted(CLAUSES), rng.randint(5, len(CLAUSES)))
    title = rng.choice(["SUPPLY AGREEMENT", "MASTER SERVICES AGREEMENT", "FRAMEWORK PURCHASE AGREEMENT",
                        "DISTRIBUTION AGREEMENT", "MAINTENANCE AGREEMENT"])
    lines = [f"# {title}", "",
             f"This agreement is made on {_date(rng)} between {A} of {rng.choice(_CITIES)} (\"{a}\") and {B} of "
             f"{rng.choice(_CITIES)} (\"{b}\").", ""]
    facts = {}
    for n, kind in enumerate(kinds, 1):
        head, body, _ = CLAUSES[kind]
        v = dict(a=a, b=b, date=_date(rng), years=rng.randint(2, 9), days=rng.choice([10, 14, 21, 30, 45, 60, 90, 120]),
                 amount=f"{rng.randint(2, 950) * 1000:,}", cur=rng.choice(["EUR", "USD", "GBP", "CHF"]),
                 period=rng.choice(["month", "quarter", "year"]), rate=rng.choice([2, 3, 4, 5, 6, 8]),
                 goods=rng.choice(_GOODS), part=_part(rng), qty=rng.randint(5, 900) * 10, city=rng.choice(_CITIES),
                 months=rng.choice([6, 12, 18, 24, 36]), country=rng.choice(_COUNTRIES))
        lines += [f"## {n}. {head}", "", body.format(**v), ""]
        facts[kind] = v
    return "\n".join(lines), facts


# ---- synthetic sensor logs ------------------------------------------------------------------------

# Event kinds: the message written in the log, and questions in other words (last: validation only).
EVENTS: dict[str, tuple[str, list[str]]] = {
    "overpressure": ("ALARM overpressure trip", ["when did {s} shut down because the pressure was too high?",
                                                 "pressure trip on {s} at {site}", "did {s} exceed its pressure limit?"]),
    "overtemp": ("ALARM bearing temperature high", ["when did the bearing on {s} run hot?",
                                                     "overheating event of {s} at {site}", "heat alarm from {s}"]),
    "vibration": ("WARN vibration above threshold", ["when was {s} shaking too much?",
                                                      "excess vibration reported by {s}", "{site}: vibration warning on {s}"]),
    "replace": ("MAINT replaced part {part}", ["when was part {part} swapped in?",
                                                "which sensor log shows {part} being fitted?", "maintenance that installed {part}"]),
    "dropout": ("ERROR signal lost", ["when did {s} stop sending readings?", "{s} went silent at {site}",
                                       "communication loss from sensor {s}"]),
    "calibration": ("MAINT calibration done by {tech}", ["when did {tech} recalibrate {s}?",
                                                          "calibration visit by {tech}", "who calibrated {s} at {site}?"]),
}
_TECHS = ["Ana Sousa", "Jonas Berg", "Mia Koski", "Luca Ferri", "Eva Novak", "Tom Byrne", "Ines Prado", "Ole Dahl"]


def synthetic_log(rng: random.Random, site_name: str, n_sensors: int = 3, rows: int = 80) -> tuple[str, list[dict]]:
    """A CSV sensor log and its notable events (sensor, kind, values)."""
    sensors = [f"{rng.choice(['PT', 'TT', 'VT', 'FT', 'LT'])}-{rng.randint(100, 9999)}" for _ in range(n_sensors)]
    day = rng.randint(1, 28)
    month = rng.randint(1, 12)
    year = rng.randint(2021, 2026)
    lines = ["timestamp,site,sensor,value,status,message"]
    events = []
    minute = 0
    for _ in range(rows):
        minute += rng.randint(1, 7)
        s = rng.choice(sensors)
        ts = f"{year}-{month:02d}-{day:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00Z"
        val = round(rng.uniform(10, 90), 1)
        if rng.random() < 0.06:
            kind = rng.choice(sorted(EVENTS))
            v = {"s": s, "site": site_name, "part": _part(rng), "tech": rng.choice(_TECHS), "ts": ts}
            msg = EVENTS[kind][0].format(**v)
            status = msg.split()[0]
            lines.append(f"{ts},{site_name},{s},{val},{status},{msg[len(status) + 1:]}")
            events.append({"kind": kind, "values": v, "needle": f"{ts},{site_name},{s}"})
        else:
            lines.append(f"{ts},{site_name},{s},{val},OK,")
    return "\n".join(lines) + "\n", events


# ---- needles in prose --------------------------------------------------------------------------------

# Fact kinds: (fact sentence, questions about it). Validation groups use only the last kind, RULER's
# wording, which training never sees; their questions are RULER's.
FACTS: list[tuple[str, list[str]]] = [
    ("The access code for {key} is {value}.", ["What is the access code for {key}?", "access code of {key}",
                                               "which code opens {key}?"]),
    ("Remember that {key} maps to {value}.", ["What does {key} map to?", "{key} maps to what?",
                                               "find the mapping for {key}"]),
    ("The reference number assigned to {key} is {value}.", ["What reference number was {key} given?",
                                                            "reference number of {key}",
                                                            "which number is assigned to {key}?"]),
    ("For the record, the passphrase of {key} is {value}.", ["What is the passphrase of {key}?",
                                                              "tell me {key}'s passphrase",
                                                              "passphrase for {key}"]),
    ("{key} was filed under the identifier {value}.", ["Under which identifier was {key} filed?",
                                                       "identifier of {key}", "where is {key} filed?"]),
    ("Note: the secret token associated with {key} is {value}.", ["What secret token goes with {key}?",
                                                                   "token associated with {key}",
                                                                   "what is the token of {key}?"]),
    ("The locker combination belonging to {key} is {value}.", ["What is {key}'s locker combination?",
                                                                "combination of the locker of {key}",
                                                                "which combination belongs to {key}?"]),
    ("In the registry, {key} is listed with the value {value}.", ["Which value is {key} listed with?",
                                                                  "registry value of {key}",
                                                                  "what does the registry say about {key}?"]),
    ("One of the special magic {kind} for {key} is: {value}.", ["What is the special magic {one} for {key}?"]),
]
_VALUE_KINDS = [("numbers", "number"), ("words", "word"), ("uuids", "uuid")]
_FALLBACK_SUBJECTS = ["The committee", "Our team", "The old report", "A later survey", "The manual", "Each visitor",
                      "The river authority", "The new library", "Most readers", "The night shift", "The archive"]
_FALLBACK_VERBS = ["noted that", "argued that", "suggested that", "found that", "recalled that", "claimed that"]
_FALLBACK_CLAUSES = ["the roads were quiet in the early hours", "prices rose slowly over the winter",
                     "the garden needed more water than expected", "the meeting ran longer than planned",
                     "few people read the footnotes", "the bridge had been repainted twice",
                     "the harvest was late but plentiful", "the trains ran on time for a month",
                     "the museum kept its doors open on holidays", "the letters were never answered",
                     "the lamps along the pier were replaced", "the school added a second language"]
_PROSE_WORD = re.compile(r"^[A-Za-z][a-z]+[.,;:]?$")
_NOT_PROSE = set("{}[]=<>|#*\\@$~^_/`:()")


def prose_sentences(parsed: dict[str, list[tuple[str, str, str, str]]], exclude: set[str],
                    limit: int = 40000) -> list[str]:
    """Plain English sentences from the packages' text documents and docstrings (not code, not
    markup), leaving out the `exclude` packages."""
    out: list[str] = []
    seen: set[str] = set()
    for pkg in sorted(parsed):
        if pkg in exclude:
            continue
        for path, _, _, text in parsed[pkg]:
            if path.endswith(".py"):
                blocks = [m.group(2) for m in _DOCSTRING.finditer(text)]
            else:
                blocks = [text]
            for b in blocks:
                for s in _SENT.split(re.sub(r"\s+", " ", b)):
                    s = s.strip()
                    words = s.split()
                    if not (6 <= len(words) <= 40) or not s.endswith(".") or "magic" in s.lower():
                        continue
                    if any(c in s for c in _NOT_PROSE) or "--" in s or "http" in s:
                        continue
                    if sum(bool(_PROSE_WORD.match(w)) for w in words) < 0.9 * len(words) or s in seen:
                        continue
                    seen.add(s)
                    out.append(s)
                    if len(out) >= limit:
                        return out
    return out


def _fallback_sentence(rng: random.Random) -> str:
    return f"{rng.choice(_FALLBACK_SUBJECTS)} {rng.choice(_FALLBACK_VERBS)} {rng.choice(_FALLBACK_CLAUSES)}."


def _needle_key(rng: random.Random, vocab: list[str]) -> str:
    """A rare key: two prose words (hyphenated or not), a made-up name, or a code."""
    r = rng.random()
    if vocab and r < 0.55:
        a, b = rng.choice(vocab), rng.choice(vocab)
        return f"{a}-{b}" if rng.random() < 0.7 else f"the {a} {b}"
    if r < 0.8:
        return f"{_name(rng, rng.choice([2, 3]))} {_name(rng, 2)}" if rng.random() < 0.5 else _name(rng, 3)
    return _part(rng)


def _needle_value(rng: random.Random, kind: str, vocab: list[str]) -> str:
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words" and vocab:
        return rng.choice(vocab)
    return "%08x-%04x-%04x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16))


def needle_pairs(sentences: list[str], n: int, rng: random.Random, docs: list[Doc], *, per_group: int = 40,
                 is_val=lambda g: False) -> tuple[list[Pair], list[Pair]]:  # noqa: ANN001
    """n needle documents (fact sentence in filler prose) appended to `docs`, with their
    (training, validation) pairs. Groups of `per_group` share a fact kind; a validation group uses
    RULER's wording (the last fact kind) and RULER's question."""
    train: list[Pair] = []
    val: list[Pair] = []
    if n <= 0:
        return train, val
    pool = sentences if len(sentences) >= 50 else sentences + [_fallback_sentence(rng) for _ in range(400)]
    vocab = sorted({w.strip(".,;:").lower() for s in pool for w in s.split()
                    if len(w.strip(".,;:")) >= 5 and w.strip(".,;:").isalpha()})
    used: set[str] = set()
    n_groups = max(1, -(-n // per_group))
    for gi in range(n_groups):
        group = f"needles/{gi:03d}"
        held = is_val(group)
        fi = len(FACTS) - 1 if held else gi % (len(FACTS) - 1)
        fact, questions = FACTS[fi]
        kind, one = _VALUE_KINDS[gi % len(_VALUE_KINDS)] if held else rng.choice(_VALUE_KINDS)
        for j in range(min(per_group, n - gi * per_group)):
            key = _needle_key(rng, vocab)
            while key in used:
                key = _needle_key(rng, vocab)
            used.add(key)
            value = _needle_value(rng, kind, vocab)
            body: list[str] = []
            target = rng.randint(1200, 2400)
            while sum(len(s) + 1 for s in body) < target:
                body.append(rng.choice(pool))
            at = rng.randint(0, len(body))
            body.insert(at, fact.format(key=key, value=value, kind=kind))
            if rng.random() < 0.25:  # a distractor fact of the same kind about another key
                other = _needle_key(rng, vocab)
                if other != key:
                    body.insert(rng.randint(0, len(body)), fact.format(key=other, value=_needle_value(rng, kind, vocab),
                                                                       kind=kind))
            paras, cur = [], []
            for s in body:
                cur.append(s)
                if len(cur) >= rng.randint(3, 6):
                    paras.append(" ".join(cur))
                    cur = []
            if cur:
                paras.append(" ".join(cur))
            docs.append(Doc("\n\n".join(paras), f"{group}/note-{j:03d}.txt", "text", group))
            q = rng.choice(questions).format(key=key, one=one)
            (val if held else train).append(Pair(q, len(docs) - 1, group, "needle"))
    return train, val


# ---- all together ------------------------------------------------------------------------------------


def _parse_written(root: Path, rels: list[str]) -> dict[str, list[tuple[str, str, str, str]]]:
    out = {}
    for rel in rels:
        out[rel] = _parse_one((str(root / rel), str(root)))
    return out


def make_router_data(seed: int = 0, *, max_files: int = 6000, per_package: int = 400, contracts: int = 600,
                     logs: int = 300, needles: int = 0, val_fraction: float = 0.08, workers: int | None = None,
                     roots: list[Path] | None = None, log=print) -> RouterData:  # noqa: ANN001
    """Documents and (question, document) pairs, split into training and validation pairs."""
    rng = random.Random(seed)
    workers = workers if workers is not None else max(1, (os.cpu_count() or 1) - 1)
    data = RouterData()

    def is_val_group(g: str) -> bool:
        return _h(seed, "val", g) % 1000 < val_fraction * 1000

    # code and package docs
    roots = third_party_roots() if roots is None else roots
    items = _package_files(roots, max_files, per_package, seed)
    parsed = parse_files([(p, r) for p, r, _ in items], workers)
    by_pkg: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for (_, _, pkg), docs in zip(items, parsed):
        by_pkg[pkg] += docs
    for pkg in sorted(by_pkg):
        pairs: list[Pair] = []
        _code_pairs(pkg, by_pkg[pkg], random.Random(_h(seed, pkg)), data.docs, pairs)
        if is_val_group(pkg):
            data.val += pairs
        else:
            data.train += pairs
    log(f"code: {len(items)} files from {len(by_pkg)} packages, {len(data.docs)} documents, "
        f"{len(data.train) + len(data.val)} pairs")

    # contracts and logs, written to files and cut by msa's parsers
    with tempfile.TemporaryDirectory(prefix="msa-router-data-") as tmp:
        root = Path(tmp)
        meta = []
        for i in range(contracts):
            text, facts = synthetic_contract(rng)
            rel = f"contracts/{_name(rng)}-{i:04d}.{rng.choice(['md', 'txt'])}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
            meta.append(("contract", rel, facts))
        for i in range(logs):
            site_name = f"{_name(rng)}-{rng.choice(['plant', 'yard', 'station', 'mill'])}"
            text, events = synthetic_log(rng, site_name, n_sensors=rng.randint(2, 4), rows=rng.randint(40, 160))
            rel = f"logs/{site_name}-{i:04d}.csv"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
            meta.append(("log", rel, events))
        parsed_files = dict(zip([m[1] for m in meta], parse_files([(root / m[1], root) for m in meta], workers)))
    n_syn = len(data.docs)
    for kind, rel, facts in meta:
        docs = parsed_files.get(rel) or []
        if not docs:
            continue
        start = len(data.docs)
        for path, dkind, _, text in docs:
            data.docs.append(Doc(text, path, dkind, rel))
        val_file = is_val_group(rel)
        qrng = random.Random(_h(seed, rel))
        if kind == "contract":
            for ck, v in facts.items():
                body = CLAUSES[ck][1].format(**v)
                hit = next((start + j for j, d in enumerate(docs) if body[:60] in d[3]), None)
                if hit is None:
                    continue
                templates = CLAUSES[ck][2]
                q = templates[-1] if val_file else qrng.choice(templates[:-1])
                (data.val if val_file else data.train).append(Pair(q.format(**v), hit, rel, f"contract_{ck}"))
        else:
            for ev in facts:
                hit = next((start + j for j, d in enumerate(docs) if ev["needle"] in d[3]), None)
                if hit is None:
                    continue
                templates = EVENTS[ev["kind"]][1]
                q = templates[-1] if val_file else qrng.choice(templates[:-1])
                (data.val if val_file else data.train).append(Pair(q.format(**ev["values"]), hit, rel, f"log_{ev['kind']}"))
    log(f"contracts and logs: {len(data.docs) - n_syn} documents")

    # needles in prose: filler from the packages' prose, never the evaluation haystack's packages
    from msa_agent.evals.haystack import PROSE_PACKAGES

    sents = prose_sentences(by_pkg, set(PROSE_PACKAGES))
    n_before = len(data.docs)
    tr, va = needle_pairs(sents, needles, random.Random(_h(seed, "needles")), data.docs, is_val=is_val_group)
    data.train += tr
    data.val += va
    log(f"needles: {len(data.docs) - n_before} documents from {len(sents)} prose sentences; total "
        f"{len(data.train)} training, {len(data.val)} validation pairs")
    rng.shuffle(data.train)
    return data
