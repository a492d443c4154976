"""`msa bench reader`: how well the backbone reads, base model against the fine-tuned reader
(the same backbone with the reader adapter merged) in one run.

Two modes:
- `gold`: the question's evidence documents are given directly, as raw text in the reader's
  prompt (`reading.py`'s layout, read by `rag.read`: no routing, no memory);
- `e2e`: the corpus is ingested into a store with msa's own pipeline (one store per model: the
  adapter changes the encoded K̄/V̄) and the question is answered by `ask` with routing.

Scores per model × mode × domain: contains-answer accuracy on answerable questions; quote accuracy
(the system-located quote contains the answer and is verbatim in an evidence document: for gold,
one of the documents given; for e2e, a memory document ingested from an evidence file); grounded
(a quote verbatim in the evidence, whether or not the answer is known); correct abstentions on
unanswerable questions ("Not stated." and its variants, `reading.is_abstention`); wrong
abstentions on answerable ones; generated tokens per second (prefill included, as `ask` times it);
for e2e, evidence recall (a question's evidence files among the documents injected).

The generated question sets (no --corpus) come from the reader's validation generators
(`train/reader_data.py`: question templates training never saw; code facts from the packages of
the validation split): contracts, code passages from third-party site-packages, sensor-log windows,
each with answerable and unanswerable questions. Every question is scoped to its document ("In the
agreement between A and B, ..."), as a user asking over a whole memory would scope it. The evidence
documents are written as files (contracts .txt, code .py, logs .log: a CSV block and an event list,
which msa's CSV reader would cut) so that e2e ingests exactly what gold gives.

Questions file (`--questions`, the format of `msa bench retrieval`): one JSON object a line,
{"question", "evidence": [paths relative to --corpus], "answers"?: [...], "answerable"?: bool,
"category"?: str}. A question is unanswerable (scored for abstention only) when `"answerable":
false` or `"answers": []`; with answers it is scored for contains-answer and quote accuracy; with
no `answers` field it is answerable with an unknown answer: scored for grounded quotes and wrong
abstentions only. `"answer": "..."` (the `msa bench qa` format) counts as one answer. `category`
is the domain of the tables (default "general").
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msa_agent.errors import BadInput
from msa_agent.reader import ReadPolicy, read_documents
from msa_agent.reading import is_abstention, locate_quote

from .common import (Engines, Hooks, Results, Table, check_mode, contains_answer, bench_corpus, evidence_path, machine,
                     question_lines, write_if_changed)

MODELS = ("base", "tuned")
# Reading strategies compared (msa_agent/reader.py): `plain` is the reader as it was (whole
# documents, its own words); `focused` the default (focused lines, calibrated abstention,
# grounding, list answers from the evidence lines).
POLICIES = ("plain", "focused")
KINDS = ("single", "list", "two-hop", "unanswerable")
MODES = ("gold", "e2e")
DOMAINS = ("contracts", "code", "logs")
COLLECTION = "reader"
# Gold evidence: a file up to this size is one document (its whole text, as training lays out the
# generated evidence); a longer one (or a PDF/DOCX) is given as the documents msa's parsers make.
_WHOLE_FILE_CHARS = 8000


@dataclass
class ReaderConfig:
    models: list[str] = field(default_factory=lambda: list(MODELS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    domains: list[str] = field(default_factory=lambda: list(DOMAINS))
    n: int = 10  # answerable questions per domain (generated sets)
    unanswerable: int | None = None  # unanswerable questions per domain (default: n // 2, at least 1)
    seed: int = 0
    mode: str = "auto"  # e2e routing mode
    max_new_tokens: int = 48
    policies: list[str] = field(default_factory=lambda: ["focused"])  # reading strategies (`POLICIES`)
    split: str = "all"  # questions of this split only ("tune", "test"; a questions file's "split" field)

    @property
    def n_unanswerable(self) -> int:
        return max(1, self.n // 2) if self.unanswerable is None else self.unanswerable

    def check(self) -> None:
        check_mode(self.mode)
        for what, got, allowed in (("model", self.models, MODELS), ("mode", self.modes, MODES),
                                   ("domain", self.domains, DOMAINS), ("policy", self.policies, POLICIES)):
            bad = [x for x in got if x not in allowed]
            if bad or not got:
                raise BadInput(f"unknown {what} {bad[0] if bad else ''!r} (any of {', '.join(allowed)})")
        if self.n < 1:
            raise BadInput(f"--n must be at least 1, got {self.n}")
        if self.n_unanswerable < 0:
            raise BadInput(f"--unanswerable must be at least 0, got {self.unanswerable}")


# ---- questions ------------------------------------------------------------------------------------


def load_questions(path: Path) -> list[dict]:
    """Questions from a JSON-lines file (see the module docstring), each as {"question", "evidence",
    "answers" (list, or None when unknown), "answerable", "category"}."""
    out = []
    for n, q in question_lines(path):
        ev = q.get("evidence")
        if not isinstance(ev, list) or not ev or not all(isinstance(e, str) for e in ev):
            raise BadInput(f"{path}:{n}: \"evidence\" must be a non-empty list of paths")
        answers = q.get("answers")
        if answers is None and isinstance(q.get("answer"), str):
            answers = [q["answer"]]
        if answers is not None and (not isinstance(answers, list) or not all(isinstance(a, str) for a in answers)):
            raise BadInput(f"{path}:{n}: \"answers\" must be a list of strings")
        answerable = q.get("answerable", True)
        if not isinstance(answerable, bool):
            raise BadInput(f"{path}:{n}: \"answerable\" must be true or false")
        if answers == []:
            answerable = False
        quotes = q.get("quotes") or []
        if not isinstance(quotes, list) or not all(isinstance(x, dict) and isinstance(x.get("text"), str) for x in quotes):
            raise BadInput(f"{path}:{n}: \"quotes\" must be a list of {{\"path\", \"text\"}}")
        out.append({"question": q["question"], "evidence": [evidence_path(e) for e in ev],
                    "answers": [a for a in answers if a.strip()] if answerable and answers else None,
                    "answerable": answerable, "category": _category(q.get("category")),
                    "all": bool(q.get("all")), "kind": str(q.get("kind") or ("single" if answerable else "unanswerable")),
                    "split": str(q.get("split") or "all"), "quotes": [x["text"] for x in quotes]})
    return out


def _category(value: object) -> str:
    # "all" names the tables' total row: a category of that name is kept apart from it.
    c = str(value or "general")
    return "all (category)" if c == "all" else c


@dataclass
class QuestionSet:
    """Generated evidence files (path -> text) and questions in the questions-file format."""

    files: dict[str, str]
    questions: list[dict]
    notes: list[str] = field(default_factory=list)

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write `<out>/corpus/` and `<out>/questions.jsonl` (unchanged files keep their bytes, so
        a rerun's ingest finds them unchanged); returns (corpus dir, questions file)."""
        root = Path(out) / "corpus"
        root.mkdir(parents=True, exist_ok=True)
        for p in sorted(root.rglob("*"), reverse=True):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and rel not in self.files:
                p.unlink()
        for rel, text in self.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            write_if_changed(root / rel, text)
        qfile = Path(out) / "questions.jsonl"
        write_if_changed(qfile, "".join(json.dumps(q) + "\n" for q in self.questions))
        return root, qfile


def _lower_first(q: str) -> str:
    return q[:1].lower() + q[1:] if q[:2] != "I " else q


def _question(text: str, rel: str, domain: str, kind: str, answer: str | None) -> dict:
    q = {"question": text, "evidence": [rel], "category": domain, "kind": kind}
    if answer is None:
        q["answerable"] = False
        q["answers"] = []
    else:
        q["answers"] = [answer]
    return q


def _contracts(rng: random.Random, n: int, n_neg: int, files: dict[str, str]) -> list[dict]:
    from msa_agent.train import reader_data as rd

    by_key = {c[0]: c for c in rd._CLAUSES}
    ans: list[dict] = []
    neg: list[dict] = []
    i = 0
    while (len(ans) < n or len(neg) < n_neg) and i < 50 * (n + n_neg):
        c = rd.make_contract(rng, i)
        i += 1
        rel = f"contracts/{Path(c.doc.path).stem}.txt"
        scope = f"In the agreement between {c.a} and {c.b}, "
        used = False
        for key in rng.sample(sorted(c.facts), min(2, len(c.facts))):
            if len(ans) < n:
                q = rd._pick_template(rng, by_key[key][3], "val").format(a=c.a, b=c.b, goods=c.goods)
                ans.append(_question(scope + _lower_first(q), rel, "contracts", key, c.facts[key]))
                used = True
        if c.missing and len(neg) < n_neg and rng.random() < 0.6:
            key = rng.choice(c.missing)
            q = rd._pick_template(rng, by_key[key][3], "val").format(a=c.a, b=c.b, goods=c.goods)
            neg.append(_question(scope + _lower_first(q), rel, "contracts", key, None))
            used = True
        if used:
            files[rel] = c.doc.text
    return ans + neg


def _logs(rng: random.Random, n: int, n_neg: int, files: dict[str, str]) -> list[dict]:
    from msa_agent.train import reader_data as rd

    ans: list[dict] = []
    neg: list[dict] = []
    i = 0
    while (len(ans) < n or len(neg) < n_neg) and i < 50 * (n + n_neg):
        doc, facts, negs = rd.make_log_window(rng, i)
        i += 1
        p = Path(doc.path)
        rel = f"logs/{p.parent.name}/{p.stem}_{i:03d}.log"
        day = doc.anchor.split("T")[0]
        scope = f"In the {p.parent.name} sensor log of {day}, "
        used = False
        for kind, templates, answer in rng.sample(facts, min(2, len(facts))):
            if len(ans) < n:
                ans.append(_question(scope + _lower_first(rd._pick_template(rng, templates, "val")), rel, "logs",
                                     kind, answer))
                used = True
        if len(neg) < n_neg and rng.random() < 0.6:
            templates, kind = rng.choice(negs)
            neg.append(_question(scope + _lower_first(rd._pick_template(rng, templates, "val")), rel, "logs", kind,
                                 None))
            used = True
        if used:
            files[rel] = doc.text
    return ans + neg


def _code(rng: random.Random, n: int, n_neg: int, seed: int, files: dict[str, str]) -> list[dict]:
    from msa_agent.train import reader_data as rd

    ans: list[dict] = []
    neg: list[dict] = []
    for path, shown in rd.code_files(2000, seed, "val"):
        if len(ans) >= n and len(neg) >= n_neg:
            break
        per_file = 0
        for ex in rd.file_facts(path, shown, random.Random(f"{seed}:{shown}"), "val"):
            if ex.answerable and (len(ans) >= n or per_file >= 3):
                continue
            if not ex.answerable and len(neg) >= n_neg:
                continue
            doc = ex.docs[0]
            lines = re.findall(r"\d+", doc.anchor)
            rel = f"code/{shown.removesuffix('.py')}.L{'-'.join(lines[:1] + lines[-1:])}.py"
            if files.get(rel, doc.text) != doc.text:
                continue
            mod = shown.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            q = _question(f"In {mod}, " + _lower_first(ex.question), rel, "code", ex.kind,
                          ex.answer if ex.answerable else None)
            (ans if ex.answerable else neg).append(q)
            files[rel] = doc.text
            per_file += ex.answerable
    return ans + neg


def make_question_set(seed: int, n: int, n_unanswerable: int, domains: list[str]) -> QuestionSet:
    """`n` answerable and `n_unanswerable` unanswerable questions per domain, from the seed (and,
    for code, the third-party packages installed); fewer where the generators run dry (noted)."""
    files: dict[str, str] = {}
    qs: list[dict] = []
    notes: list[str] = []
    for d in domains:
        rng = random.Random(f"reader-bench:{seed}:{d}")
        got = (_contracts(rng, n, n_unanswerable, files) if d == "contracts"
               else _logs(rng, n, n_unanswerable, files) if d == "logs"
               else _code(rng, n, n_unanswerable, seed, files))
        a = sum(q["answerable"] if "answerable" in q else True for q in got)
        if a < n or len(got) - a < n_unanswerable:
            notes.append(f"{d}: only {a} answerable and {len(got) - a} unanswerable questions could be generated")
        qs += got
    return QuestionSet(files, qs, notes)


# ---- models ---------------------------------------------------------------------------------------


@dataclass
class ReaderModels:
    """The engines per model name ("base": no adapter; "tuned": the reader adapter merged), with
    what could not be loaded and why."""

    engines: dict[str, Engines]
    adapters: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def fingerprint(self, name: str) -> str:
        return self.engines[name].generate.fingerprint


@contextmanager
def _adapter_env(value: str) -> Iterator[None]:
    # Engine.load picks its adapter from MSA_ADAPTER: set for one load, then put back.
    old = os.environ.get("MSA_ADAPTER")
    os.environ["MSA_ADAPTER"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MSA_ADAPTER", None)
        else:
            os.environ["MSA_ADAPTER"] = old


def find_tuned_adapter(model: str | None, adapter: str | Path | None = None) -> tuple[Path | None, str]:
    """The adapter that makes "tuned": `adapter`, else MSA_ADAPTER, else the shipped one for the
    backbone. Returns (file or None, why none)."""
    from msa_agent import settings
    from msa_agent.engine import reader_adapter
    from msa_agent.model.weights import ModelNotFound, resolve_model_dir

    if adapter is not None:
        p = Path(adapter).expanduser()
        if not p.is_file():
            raise BadInput(f"{adapter}: no such adapter file")
        return p, ""
    env = os.environ.get("MSA_ADAPTER", "")
    if env.lower() == "none":
        return None, "MSA_ADAPTER=none"
    try:
        model_dir = resolve_model_dir(settings.model_spec(model), settings.model_cache_dir())
    except ModelNotFound as e:
        raise BadInput(str(e)) from None
    found = reader_adapter(model_dir)
    if found is None:
        return None, ("no reader adapter trained for this backbone in model/trained/ "
                      "(train one with `msa train reader`, or pass --adapter FILE)")
    return found, ""


def load_models(model: str | None = None, *, names: list[str] | tuple[str, ...] = MODELS, device: str = "cpu",
                dtype: str | None = None, adapter: str | Path | None = None, encoder: bool = True) -> ReaderModels:
    """Load base and/or tuned side by side. Without an adapter, "tuned" is left out with a note
    (and a run of "tuned" alone is refused). `encoder`: also load the encode-dtype engine (e2e)."""
    from msa_agent.engine import Engine, default_dtype

    def engines() -> Engines:
        gen_dtype = dtype or default_dtype(device, "generate")
        enc_dtype = dtype or default_dtype(device, "encode")
        gen = Engine.load(model, dtype=gen_dtype, device=device, purpose="generate")
        enc = gen if not encoder or enc_dtype == gen_dtype else Engine.load(model, dtype=enc_dtype, device=device,
                                                                            purpose="encode")
        return Engines(enc, gen)

    out = ReaderModels({})
    for name in names:
        if name == "base":
            with _adapter_env("none"):
                out.engines["base"] = engines()
            out.adapters["base"] = None
        else:
            path, why = find_tuned_adapter(model, adapter)
            if path is None:
                if list(names) == ["tuned"]:
                    raise BadInput(f"cannot run the tuned model: {why}")
                out.notes.append(f"tuned model NOT run: {why}; base only")
                continue
            with _adapter_env(str(path)):
                out.engines["tuned"] = engines()
            out.adapters["tuned"] = str(path)
    return out


# ---- scoring --------------------------------------------------------------------------------------


def score(q: dict, reply: str, quotes: list[str], evidence_texts: list[str]) -> dict:
    """One reply: abstained; on answerable questions, contains (any answer in the reply), quote_ok
    (a quote holds an answer and is verbatim in the evidence), grounded (a quote verbatim in the
    evidence); contains/quote_ok are None where the answers are unknown."""
    abst = is_abstention(reply)
    if not q["answerable"]:
        return {"abstained": abst}
    inside = [t for t in quotes if t and any(t in e for e in evidence_texts)]
    answers = q["answers"]
    out = {"abstained": abst, "grounded": bool(inside) and not abst, "contains": None, "quote_ok": None}
    if answers:
        # A list question ("all": true) needs every item; otherwise any one accepted form.
        need = all if q.get("all") else any
        out["contains"] = need(contains_answer(reply, a) for a in answers)
        out["quote_ok"] = not abst and need(any(contains_answer(t, a) for t in inside) for a in answers)
    return out


def gold_quote(passages: list, reply: str, question: str) -> str | None:  # noqa: ANN001 - rag.Passage
    """The quote the system locates for a reply among the given documents (as `ask` cites: a
    verbatim answer span first, then the best word overlap)."""
    best = None
    for p in passages:
        q = locate_quote(p.text, reply, question)
        if q is not None and (best is None or (q.exact and not best.exact)):
            best = q
    return best.text if best else None


def evidence_passages(corpus: Path, rels: list[str]) -> list:
    """The documents gold mode gives for evidence files: a text file's whole text when short,
    else the documents msa's parsers make of it."""
    from msa_agent.ingest import SourceError, parse_file

    from .rag import Passage

    out = []
    for rel in rels:
        p = corpus / rel
        if not p.is_file():
            raise BadInput(f"{rel}: evidence file not in {corpus}")
        text = None
        if p.suffix.lower() not in (".pdf", ".docx") and p.stat().st_size <= _WHOLE_FILE_CHARS:
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None and text.strip():
            out.append(Passage(-1, rel, f"lines 1-{text.rstrip(chr(10)).count(chr(10)) + 1}", text))
            continue
        try:
            docs = parse_file(p, corpus)
        except SourceError as e:
            raise BadInput(str(e)) from None
        out += [Passage(-1, rel, d.anchor, d.text) for d in docs]
    return out


# ---- the run --------------------------------------------------------------------------------------


def _key(name: str, fp: str, mode: str, i: int, policy: str = "focused") -> str:
    return f"{name}+{policy}/{fp[:12]}/{mode}/{i}"


def _digest(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]


def gold_documents(corpus: Path, q: dict) -> list:
    """The documents gold mode gives: of the documents of the question's evidence files (as
    `evidence_passages` makes them), those holding one of its quotes (whitespace folded), at most
    four; without quotes (or none found: unanswerable questions), the three sharing most content
    words with the question."""
    from msa_agent.reading import content_words

    docs = evidence_passages(corpus, q["evidence"])

    def fold(t: str) -> str:
        return re.sub(r"\s+", " ", t).strip().lower()

    quotes = [fold(x) for x in q.get("quotes") or [] if x.strip()]
    keep = [d for d in docs if any(x in fold(d.text) for x in quotes)]
    if keep:
        return keep[:4]
    qw = content_words(q["question"])
    return sorted(docs, key=lambda d: -len(qw & content_words(d.text)))[:3]


def run_reader(cfg: ReaderConfig, out_dir: Path, models: ReaderModels, *, corpus: Path | None = None,
               questions: Path | None = None, hooks: Hooks | None = None, fresh: bool = False) -> dict:
    """Run (or resume) the bench; returns the summary that `<out>/reader.json` holds."""
    from msa_agent.ask import ask
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    from . import rag

    cfg.check()
    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    names = [m for m in cfg.models if m in models.engines]
    if not names:
        raise BadInput("no model to run: " + "; ".join(models.notes or ["none loaded"]))
    notes = list(models.notes)
    if fresh:
        for d in out_dir.glob("store-*"):
            shutil.rmtree(d, ignore_errors=True)

    def generate() -> tuple[Path, Path]:
        qset = make_question_set(cfg.seed, cfg.n, cfg.n_unanswerable, cfg.domains)
        notes.extend(qset.notes)
        return qset.write(out_dir / "generated")

    corpus, questions, ident = bench_corpus(
        corpus, questions, generate,
        f"generated (seed {cfg.seed}, {cfg.n} answerable + {cfg.n_unanswerable} unanswerable per domain)")
    for n in notes:
        hooks.message(f"note: {n}")
    qs = [q for q in load_questions(questions) if cfg.split == "all" or q["split"] in (cfg.split, "all")]
    if not qs:
        raise BadInput(f"{questions}: no question in split {cfg.split!r}")
    fps = {name: models.fingerprint(name) for name in names}
    config = {"bench": "reader", **{k: v for k, v in asdict(cfg).items() if k not in ("models", "modes", "policies")},
              **ident, "fingerprints": fps,
              "models": names, "modes": cfg.modes, "policies": cfg.policies}
    results = Results(out_dir, "reader", config, fresh=fresh, extendable=("models", "modes", "fingerprints", "policies"))
    # A row's label names the adapter by its digest: two readers (v2, v3) share a bench folder and,
    # since the memory does not depend on the reader, its store.
    tags = {n: (f"{n}@{_digest(models.adapters[n])}" if models.adapters.get(n) else n) for n in names}
    plan = [(name, pol, mode, i) for name in names for pol in cfg.policies for mode in cfg.modes for i in range(len(qs))]
    hooks.plan(len(plan))
    if results.resumed:
        hooks.advance(sum(_key(tags[n], fps[n], m, i, p) in results for n, p, m, i in plan), True)
    t_run = time.perf_counter()
    gold_cache: dict[int, list] = {}
    stores: dict[str, object] = {}  # by fingerprint: the memory does not depend on the reader
    memory: dict[str, dict] = {}
    try:
        for name, pol, mode, i in plan:
            key = _key(tags[name], fps[name], mode, i, pol)
            if key in results:
                continue
            q = qs[i]
            gen = models.engines[name].generate
            policy = ReadPolicy.plain() if pol == "plain" else ReadPolicy()
            if mode == "gold":
                if i not in gold_cache:
                    gold_cache[i] = gold_documents(corpus, q)
                docs = gold_cache[i]
                t0 = time.perf_counter()
                read = read_documents(gen, q["question"], [(d.path, d.anchor, d.text) for d in docs], policy,
                                      max_new_tokens=cfg.max_new_tokens)
                reply = read.answer
                quote = gold_quote(docs, reply, q["question"]) if not is_abstention(reply) else None
                quotes = [quote] if quote else []
                ev_texts = [d.text for d in docs]
                extra = {"tokens": read.tokens, "gen_ms": round((time.perf_counter() - t0) * 1000, 1),
                         "quote": quote, "how": read.how}
            else:
                fp = fps[name]
                if fp not in stores:
                    stores[fp], memory[fp] = _ingest(out_dir, fp, corpus, models.engines[name].encode,
                                                     ingest_dir, Store, hooks)
                store, mem = stores[fp], memory[fp]
                res = ask(store, gen, q["question"], collection=COLLECTION, mode=cfg.mode,
                          max_new_tokens=cfg.max_new_tokens, policy=policy)
                reply = res.answer
                ev = set(q["evidence"])
                ev_texts = [t for p, ts in mem["texts"].items() if p in ev for t in ts]
                quotes = [c.get("quote") for c in res.citations if c.get("path") in ev and c.get("quote")]
                seen = {mem["paths"].get(d) for r in res.rounds for d in r.get("injected", [])}
                extra = {"tokens": res.timing.get("tokens", 0), "gen_ms": res.timing.get("total_ms", 0.0),
                         "prompt_tokens": res.timing.get("prompt_tokens"), "route": res.mode,
                         "evidence_recall": len(ev & seen) / len(ev), "how": res.reading.get("how"),
                         "citations": [{"path": c.get("path"), "quote": c.get("quote")} for c in res.citations]}
            rec = {"model": f"{tags[name]}+{pol}", "fingerprint": fps[name], "mode": mode, "qid": i, "domain": q["category"],
                   "kind": q["kind"], "split": q["split"],
                   "answerable": q["answerable"], "question": q["question"], "answers": q["answers"],
                   "reply": reply, **score(q, reply, quotes, ev_texts), **extra}
            results.add(key, rec)
            hooks.advance(1, False)
    finally:
        for s in stores.values():
            s.close()
    labels = [f"{tags[n]}+{p}" for n in names for p in cfg.policies]
    fps = {**fps, **{f"{tags[n]}+{p}": fps[n] for n in names for p in cfg.policies}}
    recs = [r for r in results.records() if r["model"] in labels and r["fingerprint"] == fps[r["model"]]
            and r["mode"] in cfg.modes and r["qid"] < len(qs) and r["question"] == qs[r["qid"]]["question"]]
    summary = summarize(recs, labels, cfg.modes)
    summary.update(config=config, machine=machine(), device=models.engines[names[0]].generate.device,
                   questions=len(qs), answerable=sum(q["answerable"] for q in qs), notes=notes,
                   adapters={n: (Path(a).name if a else None) for n, a in models.adapters.items() if n in names},
                   memory={n: {"documents": m["documents"], "tokens": m["tokens"], "ingest_seconds": m["seconds"]}
                           for n, m in memory.items()},
                   run_seconds=round(time.perf_counter() - t_run, 1), resumed_items=results.resumed)
    tables = reader_tables(summary)
    summary["outputs"] = write_outputs(out_dir, summary, tables)
    summary["tables"] = [t.as_dict() for t in tables]
    return summary


def _ingest(out_dir: Path, name: str, corpus: Path, enc, ingest_dir, Store, hooks: Hooks):  # noqa: ANN001, ANN202, N803
    from . import rag

    hooks.message(f"ingesting {corpus} for {name}")
    store = Store.open(out_dir / f"store-{name}", create=True)
    rep = ingest_dir(corpus, store, enc, collection=COLLECTION)
    if rep.failed:
        hooks.message(f"{rep.failed} files failed to ingest, first: {rep.failures[0]}")
    docs = rag.passages(store, COLLECTION)
    if not docs:
        store.close()
        raise BadInput(f"{corpus}: nothing to ingest")
    texts: dict[str, list[str]] = {}
    for d in docs:
        texts.setdefault(d.path, []).append(d.text)
    return store, {"texts": texts, "paths": {d.doc_id: d.path for d in docs}, "documents": len(docs),
                   "tokens": sum(d.n_tokens for d in store.live_documents(COLLECTION)), "seconds": rep.seconds}


# ---- summary and outputs ---------------------------------------------------------------------------


def _pct(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return 100 * sum(bool(x) for x in xs) / len(xs) if xs else None


def _cell(rs: list[dict]) -> dict:
    ans = [r for r in rs if r["answerable"]]
    neg = [r for r in rs if not r["answerable"]]
    gen_s = sum(r.get("gen_ms") or 0.0 for r in rs) / 1000
    rec = [r["evidence_recall"] for r in rs if r.get("evidence_recall") is not None]
    return {"n_answerable": len(ans), "n_unanswerable": len(neg),
            "contains": _pct([r["contains"] for r in ans]), "quote": _pct([r["quote_ok"] for r in ans]),
            "grounded": _pct([r["grounded"] for r in ans]), "abstention": _pct([r["abstained"] for r in neg]),
            "wrong_abstention": _pct([r["abstained"] for r in ans]),
            "tokens_per_s": round(sum(r.get("tokens") or 0 for r in rs) / gen_s, 1) if gen_s > 0 else None,
            "seconds_per_question": round(gen_s / len(rs), 2) if rs else None,
            "evidence_recall": 100 * sum(rec) / len(rec) if rec else None}


def summarize(records: list[dict], models: list[str], modes: list[str]) -> dict:
    """Per model, mode and domain (and "all"): the scores of `_cell`, in percent."""
    domains = sorted({r["domain"] for r in records}, key=lambda d: (DOMAINS.index(d) if d in DOMAINS else len(DOMAINS), d))
    kinds = [k for k in KINDS if any(r.get("kind") == k for r in records)]
    cells: dict[str, dict] = {}
    for m in models:
        for mode in modes:
            for d in [*domains, *kinds, "all"]:
                rs = [r for r in records if r["model"] == m and r["mode"] == mode
                      and (d == "all" or (r.get("kind") == d if d in kinds else r["domain"] == d))]
                if rs:
                    cells[f"{m}/{mode}/{d}"] = _cell(rs)
    return {"cells": cells, "domains": domains, "kinds": kinds, "models": models, "modes": modes}


# The targets of the real-document dev set (issue #14): contains-answer with gold evidence and end to
# end, wrong abstentions (at most), correct abstentions (at least).
TARGETS = (("gold", "all", "contains", 75.0, ">="), ("e2e", "all", "contains", 65.0, ">="),
           ("gold", "all", "wrong_abstention", 10.0, "<="), ("e2e", "all", "wrong_abstention", 10.0, "<="),
           ("gold", "all", "abstention", 80.0, ">="), ("e2e", "all", "abstention", 80.0, ">="))


def reader_tables(summary: dict) -> list[Table]:
    # Short headers (the table fits 80 columns); the Markdown intro says what each one means.
    head = ["model", "mode", "domain", "contains %", "quote %", "grounded %", "abstain %", "wrong abst. %",
            "recall %", "s/q", "n"]
    rows = []
    for k, c in summary["cells"].items():
        m, mode, d = k.split("/")
        rows.append([m, mode, d, c["contains"], c["quote"], c["grounded"], c["abstention"], c["wrong_abstention"],
                     c["evidence_recall"], c.get("seconds_per_question"), f"{c['n_answerable']}/{c['n_unanswerable']}"])
    missing = [n for n in summary.get("notes", []) if n.startswith("tuned model NOT run")]
    title = "Reader: base against tuned" + (" (tuned NOT run: no adapter)" if missing else "")
    tables = [Table(title, head, rows)]
    trows = []
    for mode, d, metric, goal, op in TARGETS:
        vals = [summary["cells"].get(f"{m}/{mode}/{d}", {}).get(metric) for m in summary["models"]]
        if any(v is not None for v in vals):
            met = ["yes" if v is not None and (v >= goal if op == ">=" else v <= goal) else "no" for v in vals]
            trows.append([f"{mode} {d} {metric} {'≥' if op == '>=' else '≤'} {goal:.0f}%", *vals, *met])
    if trows:
        tables.append(Table("Targets (issue #14)", ["target", *[f"{m} (%)" for m in summary["models"]],
                                                   *[f"{m} met" for m in summary["models"]]], trows))
    return tables


def _intro(summary: dict) -> str:
    c, m = summary["config"], summary["machine"]
    lines = []
    for n in summary["notes"]:
        lines.append(f"**Note: {n}.**")
    adapters = ", ".join(f"{k}: {v or 'no adapter'}" for k, v in summary["adapters"].items())
    mem = "; ".join(f"{k}: {v['documents']} memory documents, {v['tokens']:,} tokens" for k, v in summary["memory"].items())
    lines.append(
        f"Questions: {c['corpus']}: {summary['questions']} ({summary['answerable']} answerable). Models: {adapters} "
        f"(fingerprints {', '.join(f'{k} `{v[:12]}`' for k, v in c['fingerprints'].items())}). gold: the evidence "
        f"documents as raw text in the reader prompt; e2e: `ask` over the ingested corpus, routing mode `{c['mode']}`"
        f"{' (' + mem + ')' if mem else ''}. Max {c['max_new_tokens']} new tokens, greedy. contains: an answer occurs "
        f"in the reply (answerable questions with known answers); quote: the system-located quote holds the answer "
        f"and is verbatim in the evidence; grounded: a quote verbatim in the evidence (answerable questions); abstain: "
        f"correct abstentions on unanswerable questions; wrong abst.: abstentions on answerable ones; recall: e2e "
        f"only, the evidence files among the documents injected; s/q: seconds per question (gold: reading; e2e: the "
        f"whole `ask`, routing included); n: answerable/unanswerable questions. Device {summary['device']}; {m.get('processor', '')}, "
        f"{m.get('cpus')} CPUs, load {m.get('loadavg')}; run {summary['run_seconds']} s "
        f"({summary['resumed_items']} items resumed).")
    return "\n\n".join(lines)


def bar_plot(path: Path, summary: dict) -> Path:
    """Grouped bars per mode and domain, one bar per model: contains-answer and correct abstentions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(mode, d) for mode in summary["modes"] for d in [*summary["domains"], "all"]]
    models = summary["models"]
    fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 0.9 * len(groups) * 2), 4.2), dpi=110)
    width = 0.8 / max(1, len(models))
    for ax, metric, label in ((axes[0], "contains", "contains-answer, answerable (%)"),
                              (axes[1], "abstention", "correct abstentions, unanswerable (%)")):
        for j, m in enumerate(models):
            ys = [summary["cells"].get(f"{m}/{mode}/{d}", {}).get(metric) for mode, d in groups]
            xs = [g + (j - (len(models) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, [y if y is not None else 0 for y in ys], width, label=m)
        ax.set_xticks(range(len(groups)), [f"{mode}\n{d}" for mode, d in groups], fontsize=7)
        ax.set_ylim(0, 102)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[1].axhline(80, color="black", linewidth=0.8, linestyle="--")
    axes[0].axhline(70, color="black", linewidth=0.8, linestyle="--")
    axes[0].legend(fontsize=7)
    fig.suptitle("Reader: base against tuned (dashed: targets)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(out_dir: Path, summary: dict, tables: list[Table]) -> dict[str, str]:
    """`reader.json`, `reader.md` and `reader.png` (bars; the other benches plot lines)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "reader.json", "markdown": out_dir / "reader.md", "png": out_dir / "reader.png",
             "results": out_dir / "reader.jsonl"}
    paths["json"].write_text(json.dumps({**summary, "tables": [t.as_dict() for t in tables]}, indent=2) + "\n",
                             encoding="utf-8")
    md = "# msa bench reader\n\n" + _intro(summary) + "\n\n" + "\n".join(t.markdown() for t in tables)
    paths["markdown"].write_text(md, encoding="utf-8")
    bar_plot(paths["png"], summary)
    return {k: str(v) for k, v in paths.items()}


