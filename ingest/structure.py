"""Headings and numbered clauses in prose, and splitting prose along them to fit a size budget."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .base import pack_lines, trim_blank


@dataclass
class Block:
    """A line of a text file, a paragraph or table row of a DOCX, or a line of a PDF page."""

    no: int  # what the anchor cites: line number, paragraph number, line on the page
    text: str
    level: int = 0  # > 0: this block is a heading of that depth (1 outermost)
    label: str = ""  # the heading as cited: "§ 4.2 Termination", "ARTICLE III Warranties"


_ARTICLE = re.compile(r"^\s*(ARTICLE|Article)\s+([IVXLC]+|\d+)\b\.?\s*[:.\-–—]?\s*(.*)$")
_SECTION = re.compile(r"^\s*(SECTION|Section|§)\s*(\d{1,3}(?:\.\d{1,3}){0,4})\b\.?\s*[:.\-–—]?\s*(.*)$")
# "4." or "4.2" or "4.2.1." followed by a capitalised title; a bare "4 Foo" is too often wrapped prose.
_NUMBERED = re.compile(r"^\s{0,3}(\d{1,3}(?:\.\d{1,3}){1,4}\.?|\d{1,3}\.)\s+([A-Z(\"“].*)$")
_ALLCAPS = re.compile(r"^[A-Z][A-Z0-9 ,;&'’/()\-–]{3,78}[A-Z)]$")
_MD_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")

_CONTRACT_MARKERS = [
    re.compile(p, re.I)
    for p in (
        r"\bagreement\b",
        r"\bpart(?:y|ies)\b",
        r"\bhereinafter\b",
        r"\bterminat(?:e|ion)\b",
        r"\bgoverning\s+law\b|\bgoverned\s+by\b",
        r"\bwhereas\b",
        r"\bin\s+witness\s+whereof\b",
        r"\bindemnif",
        r"\beffective\s+date\b",
        r"\bliabilit(?:y|ies)\b",
        r"\bshall\b",
        r"\bhereby\b|\bhereunder\b|\bherein\b",
    )
]


def looks_like_contract(text: str) -> bool:
    """Enough legal vocabulary in the first pages (a README that says "agreement" once is not)."""
    head = text[:20000]
    return sum(1 for m in _CONTRACT_MARKERS if m.search(head)) >= 4


def _short_title(rest: str) -> str:
    rest = rest.strip().strip(".:-–— ")
    if not rest:
        return ""
    # "Termination for cause. Either party may..." -> "Termination for cause"
    m = re.match(r"^(.{1,60}?)[.:](?:\s|$)", rest)
    if m:
        return m.group(1).strip()
    if len(rest) <= 60:
        return rest
    cut = rest[:60].rsplit(" ", 1)[0]
    return cut + "…"


def clause_heading(line: str, *, allcaps: bool = True) -> tuple[int, str] | None:
    """(level, label) when the line opens a clause: ARTICLE III, Section 5, § 4.2, 4., 4.2, ALL CAPS."""
    if len(line) > 300:
        return None
    if m := _ARTICLE.match(line):
        return 1, f"{m.group(1)} {m.group(2)} {_short_title(m.group(3))}".strip()
    if m := _SECTION.match(line):
        num = m.group(2)
        word = "§" if m.group(1) == "§" else m.group(1)
        return 2 + num.count("."), f"{word} {num} {_short_title(m.group(3))}".strip()
    if m := _NUMBERED.match(line):
        num = m.group(1).rstrip(".")
        return 2 + num.count("."), f"§ {num} {_short_title(m.group(2))}".strip()
    s = line.strip()
    if allcaps and _ALLCAPS.match(s) and sum(c.isalpha() for c in s) >= 4:
        return 2, s
    return None


def text_blocks(text: str, *, markdown: bool, clauses: bool) -> list[Block]:
    """Lines of a text file as blocks, headings marked (markdown headings and/or legal clauses)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks: list[Block] = []
    in_fence = False
    for i, line in enumerate(lines):
        b = Block(no=i + 1, text=line)
        blocks.append(b)
        if markdown and _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not line.strip():
            continue
        prev_blank = i == 0 or not lines[i - 1].strip()
        if markdown:
            if m := _MD_ATX.match(line):
                b.level, b.label = len(m.group(1)), m.group(2).strip() or m.group(1)
                continue
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if prev_blank and nxt and set(nxt) <= {"="} and len(nxt) >= 3:
                b.level, b.label = 1, line.strip()
                continue
            if prev_blank and nxt and set(nxt) <= {"-"} and len(nxt) >= 3 and not line.lstrip().startswith(("-", "*", "+")):
                b.level, b.label = 2, line.strip()
                continue
        if clauses and prev_blank:
            if h := clause_heading(line, allcaps=not markdown):
                b.level, b.label = h
    return blocks


def heading_paths(blocks: list[Block]) -> list[tuple[str, ...]]:
    """The heading labels in force at each block, outermost first (a heading is in its own path)."""
    stack: list[tuple[int, str]] = []
    out = []
    for b in blocks:
        if b.level:
            while stack and stack[-1][0] >= b.level:
                stack.pop()
            stack.append((b.level, b.label))
        out.append(tuple(lab for _, lab in stack))
    return out


def _size(blocks: list[Block], lo: int, hi: int) -> int:
    return sum(len(b.text) + 1 for b in blocks[lo:hi]) - 1


def split_blocks(blocks: list[Block], max_chars: int) -> list[list[tuple[int, str]]]:
    """Windows of (block index, text) that each fit max_chars, cut at the outermost headings first.

    A range that fits is one window. Otherwise it is cut before each heading of the shallowest
    level inside it, consecutive pieces are regrouped while they fit, and a piece that alone is
    too big is cut again one level deeper, down to windows of whole lines. Every non-blank block
    lands in exactly one window, in order.
    """
    out: list[list[tuple[int, str]]] = []

    def emit(lo: int, hi: int) -> None:
        w = trim_blank([(i, blocks[i].text) for i in range(lo, hi)])
        if w:
            out.append(w)

    def rec(lo: int, hi: int) -> None:
        if _size(blocks, lo, hi) <= max_chars:
            emit(lo, hi)
            return
        levels = [blocks[i].level for i in range(lo + 1, hi) if blocks[i].level]
        if not levels:
            out.extend(pack_lines([(i, blocks[i].text) for i in range(lo, hi)], max_chars))
            return
        top = min(levels)
        cuts = [lo] + [i for i in range(lo + 1, hi) if blocks[i].level == top] + [hi]
        group_lo = group_hi = lo
        for a, b in zip(cuts, cuts[1:]):
            if _size(blocks, group_lo, b) <= max_chars:
                group_hi = b
                continue
            if group_hi > group_lo:
                emit(group_lo, group_hi)
            if _size(blocks, a, b) <= max_chars:
                group_lo, group_hi = a, b
            else:
                rec(a, b)
                group_lo = group_hi = b
        if group_hi > group_lo:
            emit(group_lo, group_hi)

    if blocks:
        rec(0, len(blocks))
    return [w for w in out if any(t.strip() for _, t in w)]


def span_label(paths: list[tuple[str, ...]], window: list[tuple[int, str]]) -> str:
    """ "§ 4 Termination" or "§ 4 Termination – § 5 Governing law" for a window of block indices."""
    first = paths[window[0][0]]
    last = paths[window[-1][0]]
    a = first[-1] if first else ""
    # Name the end by the heading at the same depth as the start, so "§ 4 – § 5", not "§ 4 – § 5.3".
    b = last[min(len(first), len(last)) - 1] if last and first else (last[-1] if last else "")
    if not a:
        return b
    return a if not b or b == a else f"{a} – {b}"
