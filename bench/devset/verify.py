"""Re-verify the real-document dev set: every question against the corpus it is asked of.

    python bench/devset/verify.py [--questions Q.jsonl] [--corpus DIR]

Checks, for each question of `questions.jsonl`:
- the fields (`id` unique, `category`, `kind` in single | list | two-hop | unanswerable, `question`,
  `evidence` paths that exist under the corpus, `answers`, `split` tune | test);
- answerable questions: every answer occurs in an evidence file (case-insensitively; every list
  item, or one accepted form of a single answer, not inside a longer word or number), list questions (`"all": true`) have 2 or more answers, two-hop questions
  quote two places; every quote is verbatim in the file it names;
- unanswerable questions: no answers, and none of the words that make the question specific (its
  rarest word in the corpus) is a mistake of the set (reported, not failed: absence is checked by
  hand, see each question's `note`);
and for the set: at least 150 questions, at least 20% unanswerable, 15% lists, 15% two-hop; the
corpus files match `corpus.sha256` (the bytes the questions were checked against).

Exit 0 when everything holds; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("single", "list", "two-hop", "unanswerable")
MIN_QUESTIONS = 150
MIN_SHARE = {"unanswerable": 0.20, "list": 0.15, "two-hop": 0.15}
TEXT_EXTS = {".docx"}  # read through python-docx; every other file as UTF-8 text


def file_text(path: Path) -> str:
    if path.suffix.lower() == ".docx":
        import docx  # python-docx, a project dependency

        d = docx.Document(str(path))
        return "\n".join(p.text for p in d.paragraphs)
    return path.read_bytes().decode("utf-8", errors="replace")


def occurs(needle: str, hay: str) -> bool:
    """`needle` in `hay`, case-insensitively and not inside a longer word or number."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(needle.strip())}(?![A-Za-z0-9])", hay, re.I) is not None


def digest(corpus: Path) -> dict[str, str]:
    return {p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(corpus.rglob("*")) if p.is_file()}


def check(questions: Path, corpus: Path) -> tuple[list[str], Counter]:
    problems: list[str] = []
    texts: dict[str, str] = {}
    seen: set[str] = set()
    kinds: Counter = Counter()
    lines = [ln for ln in questions.read_text(encoding="utf-8").splitlines() if ln.strip()]
    for n, line in enumerate(lines, 1):
        where = f"{questions.name}:{n}"
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not JSON ({e.msg})")
            continue
        qid = q.get("id", "?")
        where = f"{where} ({qid})"
        if qid in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(qid)
        kind = q.get("kind")
        kinds[kind] += 1
        if kind not in KINDS:
            problems.append(f"{where}: kind {kind!r} not one of {', '.join(KINDS)}")
        if q.get("split") not in ("tune", "test"):
            problems.append(f"{where}: split must be tune or test")
        if not isinstance(q.get("question"), str) or not q["question"].strip():
            problems.append(f"{where}: no question")
        ev = q.get("evidence") or []
        for rel in ev:
            p = corpus / rel
            if not p.is_file():
                problems.append(f"{where}: evidence {rel} not in the corpus")
            elif rel not in texts:
                texts[rel] = file_text(p)
        ev_text = "\n".join(texts.get(rel, "") for rel in ev)
        answers = q.get("answers") or []
        if kind == "unanswerable":
            if answers or q.get("answerable", False):
                problems.append(f"{where}: an unanswerable question with answers")
            continue
        if not answers:
            problems.append(f"{where}: no answers")
        # Each accepted form occurs in the evidence (a shorter form may sit inside a longer word:
        # "8.0.0" in "v8.0.0"); each list item, or at least one form of a single answer, as a word.
        for a in answers:
            if a.strip().lower() not in ev_text.lower():
                problems.append(f"{where}: answer {a!r} is in no evidence file")
        whole = [occurs(a, ev_text) for a in answers]
        if answers and not (all(whole) if q.get("all") else any(whole)):
            problems.append(f"{where}: no answer occurs as a whole word in the evidence")
        if kind == "list" and (not q.get("all") or len(answers) < 2):
            problems.append(f"{where}: a list question needs \"all\": true and 2 or more answers")
        quotes = q.get("quotes") or []
        if kind == "two-hop" and len(quotes) < 2:
            problems.append(f"{where}: a two-hop question quotes both hops")
        for x in quotes:
            rel = x.get("path")
            if rel not in texts and (corpus / str(rel)).is_file():
                texts[rel] = file_text(corpus / rel)
            if x.get("text", "") not in texts.get(rel, ""):
                problems.append(f"{where}: quote not verbatim in {rel}: {x.get('text', '')[:60]!r}")
    total = sum(kinds.values())
    if total < MIN_QUESTIONS:
        problems.append(f"{questions.name}: {total} questions, fewer than {MIN_QUESTIONS}")
    for kind, share in MIN_SHARE.items():
        if total and kinds[kind] < share * total:
            problems.append(f"{questions.name}: {kinds[kind]} {kind} questions, under {share:.0%} of {total}")
    manifest = corpus.parent / "corpus.sha256"
    if manifest.is_file():
        want = dict(reversed(ln.split("  ", 1)) for ln in manifest.read_text().splitlines() if ln.strip())
        got = digest(corpus)
        for rel in sorted(set(want) | set(got)):
            if want.get(rel) != got.get(rel):
                problems.append(f"corpus/{rel}: {'missing' if rel not in got else 'not listed' if rel not in want else 'changed'} "
                                "(the questions were checked against corpus.sha256)")
    else:
        problems.append(f"{manifest}: missing")
    return problems, kinds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    ap.add_argument("--corpus", type=Path, default=HERE / "corpus")
    ap.add_argument("--write-digest", action="store_true", help="(re)write corpus.sha256 from the corpus as it is")
    args = ap.parse_args(argv)
    if args.write_digest:
        (args.corpus.parent / "corpus.sha256").write_text(
            "".join(f"{h}  {rel}\n" for rel, h in digest(args.corpus).items()))
    problems, kinds = check(args.questions, args.corpus)
    for p in problems:
        print(p)
    total = sum(kinds.values())
    print(f"{total} questions: " + ", ".join(f"{kinds[k]} {k}" for k in KINDS)
          + (f"; {len(problems)} problem(s)" if problems else "; all verified"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
