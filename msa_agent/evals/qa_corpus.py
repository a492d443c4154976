"""A seeded, invented enterprise corpus with single- and two-hop questions (`msa bench qa` and
`msa bench scale` use it when no corpus of the user's is given).

Company profiles say where a company has its registered office and who runs it; supply
agreements say who supplies a buyer and which parent company guarantees the buyer's obligations.
Single-hop questions ask a profile's fact about a named company; two-hop questions ask the city
or chief executive of "the company that guarantees / supplies X", so the bridging company is
named only in the agreement. Every name is invented from syllables; every answer occurs in
exactly one file, its evidence. Same seed and size, same bytes.

questions.jsonl, one question a line: {"question", "answer", "evidence": [paths, first hop first],
"hops": 1 | 2}.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_ONSET = ["Aur", "Bel", "Cal", "Dor", "El", "Fal", "Gar", "Hel", "Ist", "Jun", "Kes", "Lor", "Mer", "Nov", "Or",
          "Pral", "Quil", "Ros", "Sev", "Tal", "Ul", "Var", "Wes", "Xer", "Yor", "Zan", "Brev", "Cor", "Dun", "Eth",
          "Fen", "Grel", "Hav", "Kor", "Lun", "Mav", "Nor", "Olv", "Pel", "Rav", "Sil", "Tor", "Vel", "Wyn"]
_NUCLEUS = ["elia", "mont", "vane", "haven", "wick", "dara", "oria", "ith", "ara", "ston", "mere", "holt", "avex",
            "ion", "ora", "ello", "andor", "essa", "ind", "ulon", "arro", "enna", "ost", "ivar"]
_CITY_END = ["mouth", "stad", "burg", "ford", "polis", "ano", "era", "sund", "by", "dal", "ton", "ice"]
_SUFFIX = ["Holdings", "Industries", "Logistics", "Systems", "Partners", "Labs", "Works", "Group", "Dynamics",
           "Analytics", "Foundry", "Materials"]
_FIRST = ["Mirela", "Tomas", "Ingrid", "Rafael", "Sunniva", "Oskar", "Leontine", "Dario", "Halvard", "Amaya",
          "Corin", "Ysolde", "Benedikt", "Noor", "Teodor", "Livia", "Anselm", "Rhoswen", "Ilario", "Maelle",
          "Kasimir", "Odile", "Jurian", "Petra"]
_INDUSTRY = ["industrial pumps", "marine sensors", "grid batteries", "cold-chain logistics", "medical imaging",
             "precision valves", "agricultural drones", "water treatment", "rail signalling", "specialty coatings"]
_PRODUCT = ["pressure sensors", "gear assemblies", "control boards", "filter cartridges", "hydraulic seals",
            "cable harnesses", "thermal pads", "servo motors", "flow meters", "battery modules"]
_FILLER = [
    "The company reports its results every quarter and publishes an annual sustainability statement.",
    "Its products are sold through distributors in several regions and directly to large customers.",
    "Most of its engineering staff work at the headquarters, with smaller teams at two regional sites.",
    "It maintains a quality management system that is audited every year by an external body.",
    "The firm has grown mainly through long-term supply contracts rather than acquisitions.",
    "Customer support is available on working days, and spare parts are stocked for ten years.",
    "Its board meets six times a year and keeps an audit committee of independent directors.",
    "The company invests a steady share of its revenue in research and new product development.",
]
_TERMS = [
    "Deliveries are made to the buyer's main warehouse, and title passes on delivery.",
    "Either party may terminate the agreement for material breach after a cure period of sixty days.",
    "Invoices are issued monthly and disputes are first referred to the parties' account managers.",
    "The supplier keeps a safety stock equal to four weeks of forecast demand.",
    "Confidential information exchanged under the agreement stays confidential for five years after it ends.",
    "Prices are reviewed once a year against the published index for industrial goods.",
]


@dataclass
class Company:
    name: str
    slug: str
    city: str
    ceo: str
    industry: str
    founded: int

    @property
    def path(self) -> str:
        return f"companies/{self.slug}.md"


@dataclass
class World:
    """Unique invented names, drawn from one seeded generator."""

    rng: random.Random
    used: set[str] = field(default_factory=set)

    def _unique(self, make) -> str:  # noqa: ANN001
        for _ in range(10000):
            s = make()
            if s not in self.used:
                self.used.add(s)
                return s
        raise RuntimeError("ran out of invented names")

    def company(self) -> Company:
        r = self.rng
        root = self._unique(lambda: r.choice(_ONSET) + r.choice(_NUCLEUS))
        name = f"{root} {r.choice(_SUFFIX)}"
        city = self._unique(lambda: r.choice(_ONSET) + r.choice(_NUCLEUS)[:3] + r.choice(_CITY_END))
        ceo = self._unique(lambda: f"{r.choice(_FIRST)} {r.choice(_ONSET)}{r.choice(_NUCLEUS)}")
        return Company(name, root.lower(), city, ceo, r.choice(_INDUSTRY), r.randint(1951, 2019))

    def profile(self, c: Company) -> str:
        r = self.rng
        filler = " ".join(r.sample(_FILLER, 3))
        return (f"# {c.name}\n\n{c.name} is a {c.industry} company founded in {c.founded}. "
                f"Its registered office is in {c.city}. The chief executive of {c.name} is {c.ceo}.\n\n{filler}\n")

    def agreement(self, buyer: Company, supplier: Company, guarantor: Company) -> str:
        r = self.rng
        terms = " ".join(r.sample(_TERMS, 3))
        return (f"# Supply agreement: {buyer.name}\n\n{buyer.name} buys {r.choice(_PRODUCT)} from {supplier.name} "
                f"under this agreement, for an initial term of {r.randint(2, 7)} years. "
                f"{buyer.name}'s obligations under this agreement are guaranteed by its parent company, "
                f"{guarantor.name}.\n\n{terms}\n")


def agreement_path(buyer: Company) -> str:
    return f"agreements/{buyer.slug}-supply.md"


@dataclass
class Corpus:
    files: dict[str, str]  # relative path -> text
    questions: list[dict]
    world: World

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write `out/corpus/...` and `out/questions.jsonl`; returns both paths."""
        root = out / "corpus"
        for rel, text in self.files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.is_file() or p.read_text(encoding="utf-8") != text:
                p.write_text(text, encoding="utf-8")
        qf = out / "questions.jsonl"
        qf.write_text("".join(json.dumps(q) + "\n" for q in self.questions), encoding="utf-8")
        return root, qf


def make_corpus(seed: int = 0, size: int = 6) -> Corpus:
    """`size` supply agreements, each with a buyer, a supplier and a guarantor (3·size company
    profiles): `size` two-hop and `size` single-hop questions."""
    w = World(random.Random(f"qa-corpus/{seed}"))
    files: dict[str, str] = {}
    two: list[dict] = []
    one: list[dict] = []
    for i in range(size):
        buyer, supplier, guarantor = w.company(), w.company(), w.company()
        for c in (buyer, supplier, guarantor):
            files[c.path] = w.profile(c)
        files[agreement_path(buyer)] = w.agreement(buyer, supplier, guarantor)
        if i % 2 == 0:
            two.append({"question": f"In which city is the registered office of the company that guarantees "
                                    f"{buyer.name}'s obligations under its supply agreement?",
                        "answer": guarantor.city, "evidence": [agreement_path(buyer), guarantor.path], "hops": 2})
            one.append({"question": f"Who is the chief executive of {buyer.name}?", "answer": buyer.ceo,
                        "evidence": [buyer.path], "hops": 1})
        else:
            two.append({"question": f"Who is the chief executive of the company that supplies {buyer.name} "
                                    f"under its supply agreement?",
                        "answer": supplier.ceo, "evidence": [agreement_path(buyer), supplier.path], "hops": 2})
            one.append({"question": f"In which city is the registered office of {buyer.name}?", "answer": buyer.city,
                        "evidence": [buyer.path], "hops": 1})
    questions = [q for pair in zip(one, two) for q in pair]
    return Corpus(dict(sorted(files.items())), questions, w)


def distractor_files(world: World) -> Iterator[tuple[str, str]]:
    """Endless profiles and agreements of other invented companies (same templates, other names),
    continuing `world`'s names so none collides with the corpus's answers."""
    while True:
        try:
            buyer, supplier, guarantor = world.company(), world.company(), world.company()
        except RuntimeError:
            return
        for c in (buyer, supplier, guarantor):
            yield f"distractors/{c.path}", world.profile(c)
        yield f"distractors/{agreement_path(buyer)}", world.agreement(buyer, supplier, guarantor)
