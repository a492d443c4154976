"""Haystack text for the benches, generated deterministically from a seed.

- `noise`: RULER's repeated sentences.
- `essay`: real English prose: paragraphs of the docstrings of installed third-party packages
  (SQLAlchemy and NumPy by default, both pinned dependencies), never the held-out sets (the Python
  standard library, common-licenses, copyright files, man pages). Longer haystacks cycle through
  the paragraphs, reshuffled by seed on each pass, as RULER cycles its essays.
- `needle`: nothing but needles, each with its own key and value (RULER's multikey 2 and 3).

A haystack is cut into memory documents of about `doc_tokens` tokens along its units (a
sentence group, a paragraph or a needle, one per line); the documents for a shorter length are
always the first ones for a longer length, so a memory grows by appending documents.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from msa_agent.errors import BadInput

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PROSE_PACKAGES = ("sqlalchemy", "numpy")
_PROSE_VERSION = "1"

ADJECTIVES = """
abundant agile amber ancient arctic ardent autumn azure bashful bitter blazing bold brave breezy brief bright
brisk bronze calm candid careful cedar cheerful chilly civic clever cobalt coastal cosmic crimson crisp curious
dapper daring dusky eager early earnest electric elegant emerald fabled faint fearless fertile fiery flinty
fluent foggy frank frosty gentle giant gilded glad glossy golden graceful granite grassy hardy hasty hazel
hidden hollow honest humble icy idle ivory jade jolly keen kindly lavish lemon light lively lofty loyal lucid
lunar mellow merry mighty misty modest mossy narrow nimble noble northern oaken olive opal orange patient
pearly placid plucky polar prairie proud quick quiet radiant rapid rare regal restless rocky rosy royal
rugged rustic sable scarlet serene shady sharp silent silken silver simple sleek slender smoky snowy solar
solemn spare spry steady stormy sturdy subtle sunny swift tawny tender thorny tidal timber tranquil trusty
twilight upbeat urban valiant velvet vivid wandering warm wary wild windy wintry wise witty woolly zealous
""".split()
NOUNS = """
acorn anchor antelope anvil apricot arch arrow aspen atlas badger banner barley basin beacon beetle bell
birch bison blossom boulder bramble bridge brook buckle bugle cactus canal candle canyon cargo cascade castle
cedar cellar chalk channel chapel cherry chestnut cinder citadel clover comet compass copper coral cottage
crane crater creek crown cypress dagger delta desert dolphin dune eagle easel ember falcon fern ferry fiddle
fjord flint forest fountain fox garden garnet geyser glacier granary grove gull harbor harvest hawk heron
hickory hive horizon island ivy jasper juniper kettle lagoon lantern larch lark ledge lily lotus magnet
maple marble meadow mill minnow mirror moose mountain nectar oasis orchard otter owl paddle panther pebble
pepper pier pine plateau pond poplar prism quarry quartz quill raven reef ridge river robin saddle sapphire
satchel scroll sequoia shell shore sparrow spire spruce summit swan thicket thistle thunder tiger timber
torch tower trellis tulip tundra valley vessel violet walnut willow wolf wren yarrow zephyr
""".split()


# ---- keys and values -----------------------------------------------------------------------------


def word_key(rng: random.Random) -> str:
    """A RULER-style word key: two random words joined by a hyphen."""
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def number_value(rng: random.Random) -> str:
    """A 7-digit number, as RULER draws them."""
    return str(rng.randint(10**6, 10**7 - 1))


def uuid_value(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def draw(kind: str, rng: random.Random) -> str:
    return {"words": word_key, "numbers": number_value, "uuids": uuid_value}[kind](rng)


def distinct(kind: str, rng: random.Random, n: int, avoid: set[str] | None = None) -> list[str]:
    """n distinct draws (three-word keys once two-word ones run short)."""
    seen = set(avoid or ())
    out: list[str] = []
    tries = 0
    while len(out) < n:
        v = draw(kind, rng)
        tries += 1
        if kind == "words" and tries > 20 * n + 1000:
            v = f"{v}-{rng.choice(NOUNS)}"
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def needle_sentence(key: str, value: str, value_kind: str) -> str:
    return f"One of the special magic {value_kind} for {key} is: {value}."


# ---- prose ---------------------------------------------------------------------------------------

_ROLE = re.compile(r":[a-z:]+:`~?\.?([^`<]*?)(?:\s*<[^>]*>)?`")
_TICKS = re.compile(r"`+([^`]*)`+")
_PLAIN_WORD = re.compile(r"^[A-Za-z][a-z]*[.,;:]?$|^[a-z]+'[a-z]+[.,;]?$")


def _clean(p: str) -> str:
    p = _ROLE.sub(lambda m: m.group(1).split(".")[-1], p)
    return " ".join(_TICKS.sub(r"\1", p).split())


def _is_prose(p: str) -> bool:
    """A paragraph of plain English sentences: no code, markup, links or section rules."""
    if len(p) < 200 or not p.endswith(".") or "magic" in p.lower():
        return False
    if any(c in p for c in "{}[]=<>|#*\\@$~^_/") or ">>>" in p or "--" in p or "http" in p:
        return False
    words = p.split()
    return sum(bool(_PLAIN_WORD.match(w)) for w in words) / len(words) >= 0.85


def _package_paragraphs(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(f"no package {package!r} to take haystack prose from")
    root = Path(spec.submodule_search_locations[0])
    out: list[str] = []
    for f in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                for p in re.split(r"\n\s*\n", doc or ""):
                    p = _clean(p)
                    if _is_prose(p):
                        out.append(p)
    return out


_PROSE_MEMO: dict[tuple[str, ...], list[str]] = {}


def prose_paragraphs(packages: tuple[str, ...] = PROSE_PACKAGES, cache_dir: Path | None = None) -> list[str]:
    """Distinct prose paragraphs from the packages' docstrings, in a fixed order; cached on disk
    (keyed by the packages' versions) because parsing them takes seconds."""
    packages = tuple(packages)
    if packages in _PROSE_MEMO:
        return _PROSE_MEMO[packages]
    versions = []
    for p in packages:
        try:
            versions.append(f"{p}=={importlib.metadata.version(p)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(p)
    if cache_dir is None:
        from msa_agent import settings

        cache_dir = settings.msa_home() / "cache" / "evals"
    digest = hashlib.sha256(f"{_PROSE_VERSION};{';'.join(versions)}".encode()).hexdigest()[:16]
    cache = cache_dir / f"prose-{digest}.json"
    paras: list[str] | None = None
    if cache.is_file():
        try:
            paras = json.loads(cache.read_text(encoding="utf-8"))["paragraphs"]
        except (ValueError, KeyError):
            paras = None
    if paras is None:
        seen: dict[str, None] = {}
        for p in packages:
            seen.update(dict.fromkeys(_package_paragraphs(p)))
        paras = list(seen)
        if not paras:
            raise BadInput(f"no prose paragraphs found in {', '.join(packages)}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"packages": versions, "paragraphs": paras}), encoding="utf-8")
    _PROSE_MEMO[packages] = paras
    return paras


def split_sentences(p: str, max_chars: int) -> list[str]:
    """A long paragraph in pieces of whole sentences, each at most about max_chars."""
    sents = re.split(r"(?<=[.;])\s+", p)
    out, cur = [], ""
    for s in sents:
        if cur and len(cur) + 1 + len(s) > max_chars:
            out.append(cur)
            cur = s
        else:
            cur = f"{cur} {s}" if cur else s
    if cur:
        out.append(cur)
    return out


# ---- haystacks -----------------------------------------------------------------------------------


@dataclass
class Unit:
    """One line of a haystack document; needles carry their key and value."""

    text: str
    tokens: int
    key: str | None = None
    value: str | None = None


@dataclass
class Haystack:
    """A deterministic stream of units cut into documents of about `doc_tokens` tokens.

    `docs_for(length)` is a prefix of `docs_for(longer)`: memories grow by appending documents.
    """

    kind: str  # noise | essay | needle-words-numbers | needle-uuids-uuids
    seed: int
    doc_tokens: int
    count: Callable[[list[str]], list[int]]  # token counts of texts
    prose: tuple[str, ...] = PROSE_PACKAGES
    docs: list[list[Unit]] = field(default_factory=list)
    doc_token_counts: list[int] = field(default_factory=list)
    _units: Iterator[Unit] | None = None
    _pending: Unit | None = None

    def __post_init__(self) -> None:
        if self.kind not in HAYSTACKS:
            raise BadInput(f"unknown haystack {self.kind!r} (one of {', '.join(HAYSTACKS)})")
        self._units = self._stream()

    # The stream ------------------------------------------------------------------------------

    def _stream(self) -> Iterator[Unit]:
        if self.kind == "noise":
            n = self.count([NOISE])[0] + 1
            while True:
                yield Unit(NOISE, n)
        elif self.kind == "essay":
            rng = random.Random(f"essay/{self.seed}")
            limit = max(200, self.doc_tokens * 3)  # chars: a paragraph never outgrows a document
            pieces = [s for p in prose_paragraphs(self.prose) for s in split_sentences(p, limit)]
            counts = [c + 1 for c in self.count(pieces)]
            order = list(range(len(pieces)))
            while True:
                for i in order:
                    yield Unit(pieces[i], counts[i])
                rng.shuffle(order)
        else:
            _, kkind, vkind = self.kind.split("-")
            rng = random.Random(f"{self.kind}/{self.seed}")
            seen: set[str] = set()
            while True:
                keys = distinct(kkind, rng, 256, seen)
                seen.update(keys)
                vals = [draw(vkind, rng) for _ in keys]
                texts = [needle_sentence(k, v, vkind) for k, v in zip(keys, vals)]
                for t, c, k, v in zip(texts, self.count(texts), keys, vals):
                    yield Unit(t, c + 1, k, v)

    def _grow(self) -> None:
        doc: list[Unit] = []
        n = 0
        while True:
            u = self._pending or next(self._units)
            self._pending = None
            if doc and n + u.tokens > self.doc_tokens:
                self._pending = u
                break
            doc.append(u)
            n += u.tokens
        self.docs.append(doc)
        self.doc_token_counts.append(n)

    def docs_for(self, length: int) -> list[list[Unit]]:
        """The first documents whose tokens add up to about `length` (within half a document)."""
        total, i = 0, 0
        while total < length - self.doc_tokens // 2 or i == 0:
            if i >= len(self.docs):
                self._grow()
            total += self.doc_token_counts[i]
            i += 1
        return self.docs[:i]


HAYSTACKS = ("noise", "essay", "needle-words-numbers", "needle-uuids-uuids")


def doc_text(units: list[Unit]) -> str:
    return "\n".join(u.text for u in units) + "\n"
