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
    decor: bool = False  # the ===== under a title: part of the heading, not text

    @property
    def bare(self) -> bool:
        """A heading and nothing else ("4. Fees"), unlike a clause that opens with its number
        ("4.2 Late payment. Overdue amounts bear interest...")."""
        if not self.level:
            return False
        body = _NUMBER_PREFIX.sub("", self.text.strip())
        return len(body.split()) <= 8 and not re.search(r"[.;:]\s+\S|[.;]$", body)


_ARTICLE = re.compile(r"^\s*(ARTICLE|Article)\s+([IVXLC]+|\d+)\b\.?\s*[:.\-–—]?\s*(.*)$")
_SECTION = re.compile(r"^\s*(SECTION|Section|§)\s*(\d{1,3}(?:\.\d{1,3}){0,4})\b\.?\s*[:.\-–—]?\s*(.*)$")
# "4." or "4.2" or "4.2.1." followed by a capitalised title; a bare "4 Foo" is too often wrapped prose.
_NUMBERED = re.compile(r"^\s{0,3}(\d{1,3}(?:\.\d{1,3}){1,4}\.?|\d{1,3}\.)\s+([A-Z(\"“].*)$")
_ALLCAPS = re.compile(r"^[A-Z][A-Z0-9 ,;&'’/()\-–]{3,78}[A-Z)]$")
_NUMBER_PREFIX = re.compile(
    r"^(?:#{1,6}\s+|(?:ARTICLE|Article|SECTION|Section|§)\s*[\dIVXLC.]+\s*[:.\-–—]?\s*|\d{1,3}(?:\.\d{1,3})*\.?\s+)"
)
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


_RST_RULE = re.compile(r"^([=\-~^\"'`#*+_:.])\1{2,}\s*$")


def text_blocks(text: str, *, style: str = "plain", clauses: bool = True) -> list[Block]:
    """Lines of a text file as blocks with their headings marked.

    style "markdown": ATX (#) and setext (===/---) headings, nothing inside code fences;
    "rst": titles underlined (and optionally overlined) with punctuation, levels in order of
    first use; "plain": none. clauses: numbered legal clauses, ARTICLE/Section, ALL CAPS lines.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks = [Block(no=i + 1, text=line) for i, line in enumerate(lines)]
    rst_levels: list[tuple[str, bool]] = []
    in_fence = False
    for i, (b, line) in enumerate(zip(blocks, lines)):
        if style == "markdown" and _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not line.strip() or b.decor:
            continue
        prev_blank = i == 0 or not lines[i - 1].strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if style == "markdown":
            if m := _MD_ATX.match(line):
                b.level, b.label = len(m.group(1)), m.group(2).strip() or m.group(1)
                continue
            under = nxt.strip()
            rule = set(under) == {"="} or (set(under) == {"-"} and not line.lstrip().startswith(("-", "*", "+")))
            if prev_blank and len(under) >= 3 and rule:
                b.level, b.label = (1 if under[0] == "=" else 2), line.strip()
                blocks[i + 1].decor = True
                continue
        elif style == "rst":
            m = _RST_RULE.match(nxt)
            if m and len(nxt.rstrip()) >= len(line.strip()) and not _RST_RULE.match(line):
                over = i > 0 and lines[i - 1].strip() == nxt.strip()
                key = (m.group(1), over)
                if key not in rst_levels:
                    rst_levels.append(key)
                b.level, b.label = rst_levels.index(key) + 1, line.strip()
                blocks[i + 1].decor = True
                if over:
                    blocks[i - 1].decor = True
                continue
        # Numbered clauses often follow each other line by line; a bare ALL CAPS line is a
        # heading only after a blank line, or every shouted sentence would be one.
        if clauses and (h := clause_heading(line, allcaps=style == "plain" and prev_blank)):
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


def split_blocks(blocks: list[Block], max_chars: int) -> list[list[tuple[int, str]]]:
    """Windows of (block index, text) that each fit max_chars, cut at the outermost headings first.

    A range that fits is one window. Otherwise it is cut before each heading of the shallowest
    level inside it, consecutive pieces are regrouped while they fit, and a piece that alone is
    too big is cut again one level deeper, down to windows of whole lines. Every non-blank block
    lands in exactly one window, in order.
    """
    out: list[list[tuple[int, str]]] = []
    cum = [0]
    for b in blocks:
        cum.append(cum[-1] + len(b.text) + 1)

    def size(lo: int, hi: int) -> int:
        """Length of blocks[lo:hi] joined by newlines."""
        return cum[hi] - cum[lo] - 1

    def emit(lo: int, hi: int) -> None:
        w = trim_blank([(i, blocks[i].text) for i in range(lo, hi)])
        if w:
            out.append(w)

    def crumb(lo: int, hi: int) -> bool:
        return size(lo, hi) < max_chars // 5 or all(b.bare or b.decor or not b.text.strip() for b in blocks[lo:hi])

    def rec(lo: int, hi: int, start: int) -> None:
        """Split blocks[lo:hi]; blocks[start:lo] is a crumb carried in front of the first window."""
        if size(start, hi) <= max_chars:
            emit(start, hi)
            return
        levels = [blocks[i].level for i in range(lo + 1, hi) if blocks[i].level]
        if not levels:
            out.extend(pack_lines([(i, blocks[i].text) for i in range(start, hi)], max_chars))
            return
        top = min(levels)
        cuts = [lo] + [i for i in range(lo + 1, hi) if blocks[i].level == top] + [hi]
        group_lo, group_hi = start, lo
        for a, b in zip(cuts, cuts[1:]):
            if size(group_lo, b) <= max_chars:
                group_hi = b
                continue
            if group_hi > group_lo and crumb(group_lo, group_hi):
                # A heading or a line or two: rather the start of the next piece than a document.
                rec(a, b, group_lo)
                group_lo = group_hi = b
                continue
            if group_hi > group_lo:
                emit(group_lo, group_hi)
            if size(a, b) <= max_chars:
                group_lo, group_hi = a, b
            else:
                rec(a, b, a)
                group_lo = group_hi = b
        if group_hi > group_lo:
            emit(group_lo, group_hi)

    if blocks:
        rec(0, len(blocks), 0)
    return _merge_crumbs(blocks, [w for w in out if any(t.strip() for _, t in w)], max_chars, size)


def _merge_crumbs(blocks: list[Block], windows: list[list[tuple[int, str]]], max_chars: int, size):
    """Join windows that are only headings, or very small, to a neighbour when the two fit.

    Cutting a big piece leaves crumbs beside it (a page header, the last two lines of a clause, a
    heading whose body did not fit with it); a crumb makes a poor document on its own. A heading
    joins the text after it; other crumbs join the text before them, else after. A small section
    that opens with its own heading is not a crumb.
    """
    small = max_chars // 5

    def whole(w):  # not a slice of an over-long line
        return all(blocks[j].text == t for j, t in w)

    def joined(a, b):
        lo, hi = a[0][0], b[-1][0] + 1
        if whole(a) and whole(b) and size(lo, hi) <= max_chars:
            return [(j, blocks[j].text) for j in range(lo, hi)]
        return None

    def is_crumb(w):
        only_headings = all(blocks[j].bare or blocks[j].decor or not t.strip() for j, t in w)
        # A small section that starts with its own heading is a fine document; leave it be.
        tiny_tail = not blocks[w[0][0]].level and size(w[0][0], w[-1][0] + 1) < small
        return only_headings or tiny_tail, only_headings

    out = list(windows)
    i = 0
    while i < len(out):
        crumb, heading = is_crumb(out[i])
        if crumb:
            back = None if heading or i == 0 else joined(out[i - 1], out[i])
            if back is not None:
                out[i - 1 : i + 1] = [back]
                i -= 1
                continue
            fwd = joined(out[i], out[i + 1]) if i + 1 < len(out) else None
            if fwd is not None:
                out[i : i + 2] = [fwd]
                continue
        i += 1
    return out


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
