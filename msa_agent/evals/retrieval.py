"""`msa bench retrieval`: which documents each retriever finds for a question, over a corpus msa
ingests itself. In one run: MSA routing (`msa`), msa's lexical index (`lexical`), the hybrid
(`hybrid`: the lexical ranking and the router's fused by score, the default), the hybrid before it
(`rrf`: per-layer reciprocal-rank fusion, kept for comparison), BM25 (bm25s) and dense MiniLM over
the same memory documents. Recall@1/5/16 (the share of a question's evidence files among the files of the
top-k documents), MRR (first evidence document) and latency per query, per system and category.

The generated corpus (no --corpus): code from the Python standard library (held out from router
training), contracts and sensor logs from templates that router training never uses, a needle set
(one fact in many look-alike notes), two-hop pairs (project → owning team → on-call contact) and
paraphrase questions (a site described in other words than its profile's: no content word shared,
so the lexical index has nothing to match and routing must earn its place).
Questions say things in other words than the text; names, numbers and identifiers stay as a user
would type them. Same seed and size, same bytes.

Questions file: one JSON object per line: {"question", "evidence": [paths relative to the corpus],
"answers"?: [...], "category"?: str}.
"""

from __future__ import annotations

import ast
import json
import random
import shutil
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msa_agent.errors import BadInput

from .common import (Engines, Hooks, Results, Series, Table, bench_corpus, evidence_path, machine, mean, question_lines,
                     write_if_changed, write_outputs)

SYSTEMS = ("msa", "lexical", "hybrid", "rrf", "bm25", "dense")
KS = (1, 5, 16)


@dataclass
class RetrievalConfig:
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    seed: int = 0
    size: int = 4  # generated corpus scale: files per category grow with it
    limit: int | None = None
    top_k: int = 16
    # Routing as `msa route` does it: lower router layers' picks are attended before upper layers
    # route. False routes every layer from the question alone (as the router was trained).
    attend_memory: bool = True

    def check(self) -> None:
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad or not self.systems:
            raise BadInput(f"unknown system {bad[0] if bad else ''!r} (any of {', '.join(SYSTEMS)})")
        if self.size < 1:
            raise BadInput(f"--size must be at least 1, got {self.size}")
        if self.top_k < max(KS):
            raise BadInput(f"--top-k must be at least {max(KS)}")


def load_questions(path: Path) -> list[dict]:
    """Questions from a JSON-lines file: {"question", "evidence": [paths], "answers"?, "category"?}."""
    out = []
    for n, q in question_lines(path):
        ev = q.get("evidence")
        if not isinstance(ev, list) or not ev or not all(isinstance(e, str) for e in ev):
            raise BadInput(f"{path}:{n}: \"evidence\" must be a non-empty list of paths")
        out.append({"question": q["question"], "evidence": [evidence_path(e) for e in ev],
                    "answers": q.get("answers") or [], "category": str(q.get("category") or "all")})
    return out


# ---- the generated corpus ------------------------------------------------------------------------------

_SYL = ["ar", "bo", "cen", "di", "ef", "gul", "ha", "io", "jat", "ke", "lu", "mo", "nes", "ob", "pi", "qua", "ri",
        "sto", "tu", "uv", "wa", "xi", "yo", "zu"]
_REWORD = {"return": "hand back", "returns": "hands back", "create": "set up", "get": "look up", "set": "change",
           "compute": "figure out", "read": "load", "write": "save", "convert": "change", "check": "confirm",
           "list": "collection", "string": "text", "file": "path on disk", "object": "thing", "given": "provided",
           "new": "fresh", "remove": "take away", "add": "put in", "find": "locate", "parse": "interpret"}


def _word(rng: random.Random, n: int = 2) -> str:
    return "".join(rng.choice(_SYL) for _ in range(n)).capitalize()


def reword(text: str) -> str:
    """Other words for a docstring's first sentence (never the sentence verbatim)."""
    words = [_REWORD.get(w.lower(), w) for w in text.rstrip(".").split()]
    s = " ".join(words)
    return f"which standard library code would {s[0].lower() + s[1:]}?" if s else s


def _stdlib_questions(rng: random.Random, n_files: int, root: Path) -> list[dict]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    cands = sorted(p for p in lib.glob("*.py") if 3_000 < p.stat().st_size < 30_000 and not p.name.startswith("_"))
    rng.shuffle(cands)
    qs: list[dict] = []
    used = 0
    for p in cands:
        if used >= n_files:
            break
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        funcs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n)
                 and not n.name.startswith("_")]
        good = [(f, ast.get_docstring(f).strip().split("\n")[0]) for f in funcs]
        good = [(f, d) for f, d in good if 5 <= len(d.split()) <= 25]
        if not good:
            continue
        rel = f"code/{p.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, root / rel)
        used += 1
        f, doc = rng.choice(good)
        qs.append({"question": reword(doc), "evidence": [rel], "category": "code", "answers": [f.name]})
        f2 = rng.choice(good)[0]
        qs.append({"question": f"where does the {p.stem} module define {f2.name}?", "evidence": [rel],
                   "category": "code", "answers": [f2.name]})
    return qs


_CLAUSES = [
    ("Notice of Termination", "A party wishing to bring this contract to an end shall notify the other in writing no "
     "later than {days} days beforehand.", "how far in advance must {a} warn {b} before cancelling?"),
    ("Fees", "In consideration of the services, {b} will remit {amount} {cur} to {a} at the close of each {period}.",
     "what does {b} pay {a} for the services, and how often?"),
    ("Cap on Damages", "Save for fraud, the aggregate exposure of {a} is limited to {amount} {cur}.",
     "up to what sum can {a} be made to pay damages?"),
    ("Spare Parts", "{a} keeps spare units of item {part} available for {b} for {years} years after the last delivery.",
     "for how long are spares of {part} kept in stock?"),
    ("Place of Jurisdiction", "The competent courts for any controversy arising between {a} and {b} are those of {city}.",
     "in which city would a lawsuit between {a} and {b} be heard?"),
    ("Service Levels", "{a} guarantees that the hosted platform is reachable {uptime}% of each month; credits apply below that.",
     "what availability does {a} promise for the platform?"),
]
_CITIES = ["Antwerp", "Salzburg", "Oulu", "Galway", "Seville", "Trieste", "Odense", "Plzen", "Nantes", "Gdansk"]


def _contract_questions(rng: random.Random, n: int, root: Path) -> list[dict]:
    qs = []
    for i in range(n):
        a = f"{_word(rng)} {rng.choice(['Robotics', 'Foods', 'Marine', 'Optics', 'Textiles', 'Mining'])}"
        b = f"{_word(rng)} {rng.choice(['Retail', 'Hospitals', 'Airlines', 'Utilities', 'Farms', 'Transit'])}"
        rel = f"contracts/{a.split()[0].lower()}-{b.split()[0].lower()}-{i}.md"
        v = dict(a=a, b=b, days=rng.choice([15, 30, 60, 90]), amount=f"{rng.randint(5, 800) * 1000:,}",
                 cur=rng.choice(["EUR", "USD"]), period=rng.choice(["month", "quarter"]), city=rng.choice(_CITIES),
                 part=f"{rng.choice('QRSTUVW')}{rng.randint(100, 999)}-{rng.randint(10, 99)}", years=rng.randint(3, 12),
                 uptime=rng.choice(["99.5", "99.9", "99.95"]))
        lines = [f"# Services Contract between {a} and {b}", "",
                 f"This contract is entered into by {a} (\"Provider\") and {b} (\"Client\").", ""]
        picks = rng.sample(_CLAUSES, 4)
        for n_, (head, body, _) in enumerate(picks, 1):
            lines += [f"## {n_}. {head}", "", body.format(**v), ""]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("\n".join(lines))
        head, body, q = rng.choice(picks)
        qs.append({"question": q.format(**v), "evidence": [rel], "category": "contract"})
    return qs


_EVENTS = [("coolant leak detected", "when did {s} at {site} notice coolant escaping?"),
           ("motor stalled", "at what time did the motor behind {s} get stuck?"),
           ("door interlock opened", "when was the safety door near {s} opened?"),
           ("firmware updated to {fw}", "which log shows {s} receiving firmware {fw}?")]


def _log_questions(rng: random.Random, n: int, root: Path) -> list[dict]:
    qs = []
    for i in range(n):
        site = f"{_word(rng)}-works"
        sensors = [f"{rng.choice(['AX', 'BQ', 'CM', 'DR'])}{rng.randint(10, 99)}-{rng.randint(1, 9)}" for _ in range(3)]
        rows, minute = [], 0
        ev_at = rng.randint(10, 50)
        event = rng.choice(_EVENTS)
        fw = f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"
        target = rng.choice(sensors)
        for r in range(60):
            minute += rng.randint(1, 4)
            s = target if r == ev_at else rng.choice(sensors)
            rec = {"time": f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T{minute // 60:02d}:{minute % 60:02d}:00Z",
                   "site": site, "sensor": s, "reading": round(rng.uniform(0, 100), 2), "level": "info", "event": ""}
            if r == ev_at:
                rec["level"], rec["event"] = "error", event[0].format(fw=fw)
            rows.append(json.dumps(rec))
        rel = f"logs/{site.lower()}-{i}.jsonl"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("\n".join(rows) + "\n")
        qs.append({"question": event[1].format(s=target, site=site, fw=fw), "evidence": [rel], "category": "log"})
    return qs


_NOTE_FILL = ["The team met on Tuesday to review the quarterly roadmap and agreed on three priorities.",
              "Facilities reminded everyone that the east stairwell will be repainted next week.",
              "The cafeteria menu changes on the first Monday of every month.",
              "Please file travel expenses within thirty days of returning.",
              "The shared printer on the second floor now needs a badge to release jobs."]


def _needle_questions(rng: random.Random, n: int, root: Path) -> list[dict]:
    qs = []
    n_notes = max(8, 4 * n)
    needles = rng.sample(range(n_notes), n)
    for i in range(n_notes):
        body = rng.sample(_NOTE_FILL, 3)
        rel = f"notes/note-{i:03d}.txt"
        if i in needles:
            cab = f"{_word(rng, 3)}"
            code = f"{rng.randint(1000, 9999)}-{rng.choice('KLMNP')}"
            body.insert(rng.randint(0, 3), f"The combination for the {cab} key cabinet is {code}.")
            qs.append({"question": f"what number opens the {cab} cabinet for keys?", "evidence": [rel],
                       "category": "needle", "answers": [code]})
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"Weekly note {i}\n\n" + " ".join(body) + "\n")
    return qs


def _two_hop_questions(rng: random.Random, n: int, root: Path) -> list[dict]:
    qs = []
    for i in range(n):
        proj, team, person = _word(rng, 3), f"{_word(rng)} {rng.choice(['Squad', 'Crew', 'Guild'])}", \
            f"{_word(rng)} {_word(rng)}"
        a, b = f"projects/{proj.lower()}.md", f"teams/{team.split()[0].lower()}-{i}.md"
        for rel, text in ((a, f"# Project {proj}\n\nProject {proj} is run by the {team}. It migrates billing "
                               "reports to the new warehouse.\n"),
                          (b, f"# {team}\n\nThe {team} handles incidents in rotation; the current on-call "
                              f"engineer is {person}.\n")):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        qs.append({"question": f"who is on call for the people responsible for project {proj}?", "evidence": [a, b],
                   "category": "two-hop", "answers": [person]})
    return qs


# Paraphrase: site profiles whose questions describe the site in other words than its profile's.
# Each slot: (the profile's phrase, the question's phrases); no content word of a question's phrase is
# a content word of the profile's phrase (`content_overlap` measures it, a test holds it). The
# vocabulary (places, buildings, schedules) is none of router training's (contracts, sensor logs,
# package code, needles in package prose).
_PARA_KIND = [("refrigerated warehouse", ["cold storage building", "chilled depot"]),
              ("bakery", ["bread and pastry kitchen", "place making loaves"]),
              ("data centre", ["server hall", "computer facility"]),
              ("water treatment plant", ["facility purifying drinking supplies", "tap supply cleaning works"]),
              ("veterinary clinic", ["animal hospital", "surgery for pets"]),
              ("multi-storey car park", ["parking garage", "building for leaving vehicles"]),
              ("kindergarten", ["nursery school for toddlers", "preschool"]),
              ("brewery", ["beer maker", "place producing ale"]),
              ("sawmill", ["timber cutting yard", "lumber mill"]),
              ("commercial laundry", ["linen washing service", "place cleaning sheets and towels"]),
              ("observatory", ["telescope station", "stargazing dome"]),
              ("recycling depot", ["scrap sorting yard", "waste reprocessing site"])]
_PARA_PLACE = [("on the hilltop", ["at the summit of the rise", "up on the high ground"]),
               ("beside the railway station", ["next to where trains stop", "close to the rail terminus"]),
               ("by the river mouth", ["where the stream meets the sea", "at the estuary"]),
               ("in the old town", ["within the historic centre", "among the medieval lanes"]),
               ("near the airport", ["close to where planes land", "by the airfield"]),
               ("at the motorway junction", ["where the highways cross", "at the interchange"]),
               ("on the lakeshore", ["along the edge of the big pond", "at the waterside"]),
               ("inside the university campus", ["among the college grounds", "on academic land"]),
               ("next to the football stadium", ["beside the sports arena", "close to the soccer ground"]),
               ("under the city bridge", ["below the span crossing downtown", "beneath the viaduct"])]
_PARA_TRAIT = [("runs around the clock", ["never closes, day or night", "operates nonstop"]),
               ("opens only at weekends", ["is shut from Monday to Friday", "does business on Saturdays and Sundays"]),
               ("closes every August", ["shuts for a summer holiday", "takes a break in high summer"]),
               ("runs on solar power", ["gets its electricity from sunlight", "uses photovoltaic panels"]),
               ("was rebuilt after a fire", ["was reconstructed once it burned down", "had to be restored after flames"]),
               ("employs over two hundred people", ["has a large workforce", "counts hundreds on its payroll"]),
               ("is managed by a cooperative", ["is owned jointly by its members", "belongs to a members' collective"]),
               ("has a green roof", ["is topped with plants and grass", "grows vegetation overhead"])]
_PARA_FILL = ["Visitors sign in at the front desk.", "Deliveries arrive through the rear gate.",
              "A small canteen serves lunch.", "Inspectors came by last spring.",
              "Bicycles can be left in the covered rack.", "The manager publishes a newsletter.",
              "Staff training is held on Tuesdays.", "The entrance is wheelchair accessible."]
_PARA_ASK = ["which {kind} {place} {trait}?", "I'm looking for the {kind} {place} that {trait}",
             "find the {kind} {place}; it {trait}", "what is the name of the {kind} {place} which {trait}?"]


def content_overlap(question: str, text: str) -> float:
    """Share of a question's content words (as the lexical index splits and filters them) that the
    text holds."""
    from msa_agent.store.store import _STOP, _WORD

    def words(t: str) -> set[str]:
        return {w for w in _WORD.findall(t.lower()) if w not in _STOP and len(w) > 1}

    q = words(question)
    return len(q & words(text)) / max(1, len(q))


def _paraphrase_questions(rng: random.Random, n: int, root: Path) -> list[dict]:
    """n site profiles asked about by description (what, where, what else) in other words, among as
    many look-alike profiles that share one or two of the three traits."""
    combos = [(k, p, t) for k in range(len(_PARA_KIND)) for p in range(len(_PARA_PLACE))
              for t in range(len(_PARA_TRAIT))]
    asked = rng.sample(combos, n)
    others: list[tuple[int, int, int]] = []
    for k, p, t in asked:  # a look-alike: one or two traits changed
        for _ in range(20):
            c = [k, p, t]
            for j in rng.sample(range(3), rng.choice([1, 2])):
                c[j] = rng.randrange((len(_PARA_KIND), len(_PARA_PLACE), len(_PARA_TRAIT))[j])
            if tuple(c) not in asked and tuple(c) not in others:
                others.append(tuple(c))
                break
    profiles = [(c, True) for c in asked] + [(c, False) for c in others]
    rng.shuffle(profiles)
    qs = []
    for i, ((k, p, t), is_asked) in enumerate(profiles):
        name = f"{_word(rng)} {rng.choice(['Hollow', 'Reach', 'Court', 'Row', 'Mews'])}"
        rel = f"sites/{name.split()[0].lower()}-{i}.md"
        body = (f"{name} is a {_PARA_KIND[k][0]} {_PARA_PLACE[p][0]}. It {_PARA_TRAIT[t][0]}. "
                + " ".join(rng.sample(_PARA_FILL, 3)))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {name}\n\n{body}\n")
        if is_asked:
            q = rng.choice(_PARA_ASK).format(kind=rng.choice(_PARA_KIND[k][1]), place=rng.choice(_PARA_PLACE[p][1]),
                                             trait=rng.choice(_PARA_TRAIT[t][1]))
            qs.append({"question": q, "evidence": [rel], "category": "paraphrase", "answers": [name]})
    return qs


def make_corpus(seed: int, size: int, out: Path) -> tuple[Path, Path]:
    """Write the generated corpus and its questions under `out`; returns (corpus dir, questions file)."""
    rng = random.Random(seed)
    root = out / "corpus"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    qs = (_stdlib_questions(rng, 3 * size, root) + _contract_questions(rng, 3 * size, root)
          + _log_questions(rng, 3 * size, root) + _needle_questions(rng, 2 * size, root)
          + _two_hop_questions(rng, 2 * size, root) + _paraphrase_questions(rng, 3 * size, root))
    qfile = out / "questions.jsonl"
    write_if_changed(qfile, "".join(json.dumps(q) + "\n" for q in qs))
    return root, qfile


# ---- the run -------------------------------------------------------------------------------------------


def score(evidence: list[str], ranked_paths: list[str]) -> dict:
    """Recall@k: share of evidence files among the top-k documents' files; rank of the first hit."""
    ev = set(evidence)
    out = {}
    for k in KS:
        got = set(ranked_paths[:k]) & ev
        out[f"r{k}"] = len(got) / len(ev)
    first = next((i for i, p in enumerate(ranked_paths) if p in ev), None)
    out["rr"] = 0.0 if first is None else 1.0 / (first + 1)
    return out


def run_retrieval(cfg: RetrievalConfig, out_dir: Path, engines: Engines, *, corpus: Path | None = None,
                  questions: Path | None = None, dense_model: Path | None = None, hooks: Hooks | None = None,
                  fresh: bool = False) -> dict:
    """Run (or resume) the bench; returns the summary that `<out>/retrieval.json` holds."""
    from msa_agent.ask import Router
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    from . import rag

    cfg.check()
    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    corpus, questions, ident = bench_corpus(
        corpus, questions, lambda: make_corpus(cfg.seed, cfg.size, out_dir / "generated"), f"generated (seed {cfg.seed}, size {cfg.size})")
    if fresh:
        shutil.rmtree(out_dir / "store", ignore_errors=True)
    qs = load_questions(questions)[: cfg.limit]
    enc, gen = engines.encode, engines.generate
    trained = bool(enc.cfg.msa.decouple_router)
    config = {"bench": "retrieval", **asdict(cfg), "model": enc.fingerprint, **ident,
              "dense_model": str(dense_model) if dense_model else "all-MiniLM-L6-v2"}
    results = Results(out_dir, "retrieval", config, fresh=fresh, extendable=("systems", "limit"))
    plan = [(s, i) for i in range(len(qs)) for s in cfg.systems]
    hooks.plan(len(plan))
    if results.resumed:
        hooks.advance(sum(f"{s}/{i}" in results for s, i in plan), True)
    t_run = time.perf_counter()
    store = Store.open(out_dir / "store", create=True)
    try:
        hooks.message(f"ingesting {corpus}")
        t0 = time.perf_counter()
        rep = ingest_dir(corpus, store, enc, collection="retrieval")
        ingest_s = time.perf_counter() - t0
        if rep.failed:
            hooks.message(f"{rep.failed} files failed to ingest, first: {rep.failures[0]}")
        docs = rag.passages(store, "retrieval")
        if not docs:
            raise BadInput(f"{corpus}: nothing to ingest")
        retrievers: dict[str, object] = {}
        routers: dict[str, Router] = {}
        for s, i in plan:
            key = f"{s}/{i}"
            if key in results:
                continue
            q = qs[i]
            if s in ("msa", "lexical", "hybrid", "rrf"):
                if s not in routers:  # the memory's keys load once, as in a long-running server
                    routers[s] = Router(store, gen, "retrieval", s, cfg.top_k)
                    routers[s].memory.load_all_keys()
                t0 = time.perf_counter()
                hits = _route_once(routers[s], gen, q["question"], cfg.attend_memory)[: cfg.top_k]
                ms = (time.perf_counter() - t0) * 1000
                paths = [routers[s].memory.docs[h.index].path for h in hits]
            else:
                if s not in retrievers:
                    hooks.message(f"indexing {len(docs)} documents for {s}")
                    retrievers[s] = rag.BM25(docs) if s == "bm25" else rag.Dense(docs, dense_model, device=str(enc.device))
                t0 = time.perf_counter()
                top = retrievers[s].search(q["question"], cfg.top_k)
                ms = (time.perf_counter() - t0) * 1000
                paths = [docs[j].path for j in top]
            results.add(key, {"system": s, "qid": i, "category": q["category"], "question": q["question"],
                              "evidence": q["evidence"], "top": paths[: cfg.top_k], "ms": round(ms, 2),
                              **score(q["evidence"], paths)})
            hooks.advance(1, False)
        memory_tokens = sum(d.n_tokens for d in store.live_documents("retrieval"))
    finally:
        store.close()
    summary = summarize(results.records(), cfg)
    summary.update(config=config, machine=machine(), device=enc.device, questions=len(qs), documents=len(docs),
                   memory_tokens=memory_tokens, router="trained" if trained else "untrained (backbone q/k)",
                   ingest_seconds=round(ingest_s, 1), run_seconds=round(time.perf_counter() - t_run, 1),
                   resumed_items=results.resumed)
    tables = retrieval_tables(summary)
    series = [Series(s, [float(k) for k in KS], [summary["systems"].get(s, {}).get(f"recall@{k}") for k in KS],
                     bold=s in ("msa", "hybrid")) for s in cfg.systems]
    summary["outputs"] = write_outputs(
        out_dir, "retrieval", summary, tables, series,
        plot_kw={"title": "Retrieval: MSA routing, hybrid, BM25 and dense", "xlabel": "k (documents)",
                 "ylabel": "evidence recall@k (%)", "log_x": False, "xticks": [(float(k), str(k)) for k in KS]},
        intro=_intro(summary))
    summary["tables"] = [t.as_dict() for t in tables]
    return summary


def _route_once(router, engine, question: str, attend: bool) -> list:  # noqa: ANN001
    """One routing round for a question alone (ask's first round), memory attended or not."""
    from msa_agent.ask import SYSTEM, _prompt, _route_round

    if attend or router.mode == "lexical":
        return _route_round(router, engine, question, [], 0)
    ids, mask = _prompt(engine, [], 0, question)
    sel, lex = router.selector(question, mask, attend=False)
    engine.model.prefill(engine.tok.chat_prefix(SYSTEM), ids, sel)
    return router.ranking(sel, lex)


def summarize(records: list[dict], cfg: RetrievalConfig) -> dict:
    out: dict[str, dict] = {}
    cats = sorted({r["category"] for r in records})
    for s in cfg.systems:
        rs = [r for r in records if r["system"] == s]
        if not rs:
            continue
        row = {"n": len(rs), "mrr": mean(r["rr"] for r in rs), "latency_ms": mean(r["ms"] for r in rs)}
        for k in KS:
            row[f"recall@{k}"] = 100 * mean(r[f"r{k}"] for r in rs)
        for c in cats:
            rc = [r for r in rs if r["category"] == c]
            if rc:
                for k in KS:
                    row[f"{c}:recall@{k}"] = 100 * mean(r[f"r{k}"] for r in rc)
        out[s] = row
    return {"systems": out, "categories": cats}


def retrieval_tables(summary: dict) -> list[Table]:
    head = ["system", "R@1 (%)", "R@5 (%)", "R@16 (%)", "MRR (×100)", "latency (ms)", "n"]
    rows = [[s, r["recall@1"], r["recall@5"], r["recall@16"], 100 * r["mrr"], round(r["latency_ms"], 1), r["n"]]
            for s, r in summary["systems"].items()]
    cats = summary["categories"]
    head2 = ["system", *[f"{c} R@1 / R@5 / R@16 (%)" for c in cats]]
    rows2 = [[s, *[_triple([r.get(f"{c}:recall@{k}") for k in KS]) for c in cats]]
             for s, r in summary["systems"].items()]
    return [Table("Evidence recall by system (msa and hybrid side by side with the baselines)", head, rows),
            Table("By category", head2, rows2)]


def _triple(vals: list[float | None]) -> str:
    return "–" if vals[0] is None else " / ".join(f"{v:.0f}" for v in vals)


def _intro(summary: dict) -> str:
    c, m = summary["config"], summary["machine"]
    return (f"Corpus: {c['corpus']}, {summary['documents']} memory documents, {summary['memory_tokens']:,} tokens; "
            f"{summary['questions']} questions ({', '.join(summary['categories'])}). Router: {summary['router']}, "
            f"memory {'attended' if c['attend_memory'] else 'not attended'} between router layers "
            f"(model `{c['model'][:12]}`). msa / lexical / hybrid / rrf: `msa route` in that mode; bm25: bm25s over "
            f"the same documents; dense: {c['dense_model']}. Recall@k = share of a question's evidence files "
            f"among the files of the top-k documents. Device {summary['device']}; {m.get('processor', '')}, "
            f"{m.get('cpus')} CPUs, load {m.get('loadavg')}; ingest {summary['ingest_seconds']} s, run "
            f"{summary['run_seconds']} s ({summary['resumed_items']} items resumed).")
