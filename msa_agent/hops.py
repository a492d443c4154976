"""Two-hop questions answered as two one-hop questions, the first one's answer (the bridge)
written into the second.

"In which city is the registered office of the company that guarantees Yororia Logistics?" names
the company it asks about by a relative clause. The 135M reader, shown both the agreement and
the two companies' profiles, reads the city of the company the question names (Yororia's own).
Asked first "Which company guarantees Yororia Logistics?", it reads the guarantor's name off the
agreement; asked then "In which city is the registered office of Halvard Marine?", it reads the
right profile. So:

- `decompose` finds a relative clause that names a thing ("the company that guarantees X",
  "the official who holds the casting vote", "the function that renders byte counts"), and gives
  the sub-question ("Which company guarantees X?") and the question with a slot in its place;
  events ("the apt run that installed X", "the day that…") are left whole: the evidence's
  records (`focus`) join them better than a name would;
- `ask_two_hops` asks the sub-question, and when it gets a short answer, asks the question with
  that answer in the slot; the answer, citations and rounds of both are reported. A sub-question
  that gets no answer, or a second question that gets none, leaves the question to be asked whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# "the company that guarantees X", "the Debian official who settles disputes …", "the people whose
# key …": an article, up to four words ending in the head noun, a relative pronoun, the clause
_CLAUSE = re.compile(r"\bthe\s+((?:(?!(?:the|of|a|an)\s)[\w'-]+\s+){0,3}?((?!(?:the|of)\s)[\w'-]+))\s+"
                     r"(that|which|who|whose)\s+([^?,;()]+)", re.I)
# heads that name an event or a time, not a thing with a name of its own
_EVENT_HEADS = frozenset("""run runs session sessions day days year years week weeks month months hour hours time times
date period entry entries version versions reading readings step steps kind kinds moment point change changes
line lines record records event events""".split())
_MAX_BRIDGE_WORDS = 8
_PREPOSITIONS = frozenset("of for by to from with on in at about under during after before into between".split())
# a slot right after one of these is the question's subject, not an object: "how long does {}" is
# a clause that ran on into the question's own verb
_AUXILIARIES = frozenset("is are was were be been does do did has have had can could will would shall should may might "
                         "must".split())


@dataclass
class Hops:
    sub: str  # the first question: "Which company guarantees Yororia Logistics?"
    template: str  # the question with "{}" where the bridge goes
    span: str  # the words the bridge replaces


def decompose(question: str) -> Hops | None:
    """The sub-question and the slotted question, or None when the question names nothing by a
    relative clause (or names an event so)."""
    for m in _CLAUSE.finditer(question):
        head = m.group(2).lower()
        if head in _EVENT_HEADS or head in _PREPOSITIONS or m.group(1).lower().startswith(("same ", "first ", "last ")):
            continue
        clause = m.group(4).strip()
        before = question[: m.start()].split()
        if len(clause.split()) < 2 or not before or before[-1].lower().strip(",") in _AUXILIARIES:
            continue
        noun = m.group(1)
        sub = f"Whose {clause}?" if m.group(3).lower() == "whose" else f"Which {noun} {clause}?"
        # the clause runs to the end of the question's sentence: the slot replaces it whole
        start, end = m.start(), m.end()
        template = question[:start] + "{}" + question[end:]
        return Hops(sub, template, question[start:end])
    return None


_PROPER = re.compile(r"\b[A-Z][\w'&.-]*(?:\s+(?:of\s+|and\s+|&\s+)?[A-Z][\w'&.-]*)*")


def bridge_name(answer: str, sub: str) -> str | None:
    """The name the first hop's answer gives, to write into the second question: the answer
    itself when short, else its last proper name ("guaranteed by its parent company, Dunello
    Dynamics" → "Dunello Dynamics"); None when there is none, or when it is only the thing the
    sub-question already names (the reader copied the question)."""
    a = answer.strip().rstrip(".").strip()
    if not a or "\n" in a:
        return None
    if len(a.split()) > 3 or "," in a:
        names = [n for n in _PROPER.findall(a) if len(n) > 1]
        if not names:
            return None
        a = names[-1]
    if len(a.split()) > _MAX_BRIDGE_WORDS or a.lower() in sub.lower():
        return None
    return a


def ask_two_hops(ask_one: Callable[..., object], question: str, hops: Hops, attempt: dict | None = None,
                 **kw) -> object | None:  # noqa: ANN003
    """`ask_one(question, **kw)` on the sub-question, then on the question with its answer in the
    slot: the second result with both questions' rounds and citations, or None when either hop
    gets no usable answer (the caller then asks the question whole). `attempt`, when given, is
    filled with what was tried and why it was given up (shown in `msa ask --json`)."""
    from .reading import is_abstention

    attempt = {} if attempt is None else attempt
    first = ask_one(hops.sub, **kw)
    bridge = bridge_name(first.answer, hops.sub)
    attempt.update({"question": hops.sub, "answer": first.answer, "used": False})
    if bridge is None or is_abstention(first.answer):
        attempt["why"] = "the first hop found no name to carry over"
        return None
    second_q = hops.template.format(bridge)
    second = ask_one(second_q, **kw)
    attempt.update({"bridge": bridge, "second_question": second_q})
    if is_abstention(second.answer):
        attempt["why"] = "the second hop found no answer"
        return None
    seen = {(c["doc_id"]) for c in second.citations}
    second.citations = second.citations + [c for c in first.citations if c["doc_id"] not in seen]
    second.rounds = [{**r, "hop": 1, "question": hops.sub} for r in first.rounds] + [
        {**r, "hop": 2, "question": hops.template.format(bridge)} for r in second.rounds]
    second.reading = {**second.reading, "bridge": {"question": hops.sub, "answer": bridge, "used": True}}
    for k in ("route_ms", "generate_ms", "total_ms", "tokens"):
        if k in first.timing and k in second.timing:
            second.timing[k] = round(first.timing[k] + second.timing[k], 1)
    return second

