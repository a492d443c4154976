"""HTML pages (stdlib html.parser): the readable text, cut along h1–h6, cited by heading path and ¶."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from .base import Document, SourceError, join_lines
from .structure import Block, clause_heading, heading_paths, looks_like_contract, span_label, split_blocks

HTML_EXTS = {".html", ".htm", ".xhtml"}

# Never text: code, styling, page chrome. <header>/<footer> only when they belong to the page,
# not to an <article>/<section>/<main>, whose own header carries its title.
_SKIP = {"script", "style", "noscript", "template", "nav", "svg", "math", "select", "button", "iframe", "object"}
_CHROME = {"header", "footer"}
_CONTENT = {"article", "section", "main"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
# Elements that end the line being written: each block is one line of the document.
_BREAKS = {
    "p", "div", "li", "dt", "dd", "blockquote", "pre", "tr", "table", "ul", "ol", "dl", "br", "hr", "section",
    "article", "main", "aside", "figure", "figcaption", "address", "caption", "details", "summary", "form",
    "fieldset", "legend", "body", "html", "center", "tbody", "thead", "tfoot", "header", "footer",
    *_HEADINGS,
}  # fmt: skip
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "param", "source", "track", "wbr"}
_WS = re.compile(r"\s+")
_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


class _Extract(HTMLParser):
    """Collects lines of readable text: (text, heading level or 0)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[str, int]] = []
        self.title = ""
        self._buf: list[str] = []
        self._heading = 0
        self._skip: list[str] = []  # open elements whose content is dropped, innermost last
        self._open: list[str] = []  # open content elements (article, section, main)
        self._pre = 0
        self._lists: list[list[int]] = []  # per open list: [ordered?, items so far]
        self._tables: list[dict] = []  # per open table: {"row": cells or None, "cell": parts or None}
        self._in_title = False
        self._mark = ""  # list item marker waiting for the item's first text

    # --- the current line ----------------------------------------------------------------

    def _flush(self) -> None:
        if self._tables and self._tables[-1]["cell"] is not None:
            return  # a cell's text is collected until its row ends
        raw = "".join(self._buf)
        self._buf = []
        if self._pre:
            for ln in raw.split("\n"):
                if ln.strip():
                    self.lines.append((ln.rstrip(), 0))
            return
        text = _WS.sub(" ", raw).strip()
        if text:
            self.lines.append((self._mark + text, self._heading))
            self._mark = ""

    @staticmethod
    def _end_cell(table: dict) -> None:
        if table["cell"] is not None:
            table["row"].append(_WS.sub(" ", "".join(table["cell"])).strip())
            table["cell"] = None

    def _end_row(self, table: dict) -> None:
        self._end_cell(table)
        if table["row"] is not None:
            cells = table["row"]
            table["row"] = None
            if any(cells):
                self.lines.append((" | ".join(cells), 0))

    # --- parser callbacks ----------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip:
            if tag == self._skip[-1] and tag not in _VOID:
                self._skip.append(tag)
            return
        hidden = any(
            k == "hidden" or (k == "aria-hidden" and v == "true") or (k == "style" and v and _NONE.search(v))
            for k, v in attrs
        )
        if tag == "title" and not self.title:
            self._in_title = True
            return
        if tag in _SKIP or (tag in _CHROME and not self._open) or (hidden and tag not in _VOID):
            self._flush()
            self._skip.append(tag)
            return
        if tag in _CONTENT:
            self._open.append(tag)
        if tag in ("td", "th") and self._tables:
            t = self._tables[-1]
            if t["row"] is None:
                t["row"] = []
            self._end_cell(t)
            t["cell"] = []
            return
        if tag == "tr" and self._tables:
            self._end_row(self._tables[-1])
            self._tables[-1]["row"] = []
            return
        if tag in _BREAKS:
            self._flush()
        if tag == "table":
            self._tables.append({"row": None, "cell": None})
        elif tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            depth = max(len(self._lists) - 1, 0)
            if self._lists:
                self._lists[-1][1] += 1
                ordered, n = self._lists[-1]
                mark = f"{n}." if ordered else "-"
            else:
                mark = "-"
            self._mark = "  " * depth + mark + " "
        elif tag == "pre":
            self._pre += 1
        elif tag in _HEADINGS:
            self._heading = _HEADINGS[tag]
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self.handle_data(f" {alt.strip()} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag == "title" and self._in_title:
            self._in_title = False
            return
        if tag in ("td", "th") and self._tables:
            self._end_cell(self._tables[-1])
            return
        if tag == "tr" and self._tables:
            self._end_row(self._tables[-1])
            return
        if tag == "table" and self._tables:
            t = self._tables.pop()
            self._end_row(t)
            self._flush()
            return
        if tag in _BREAKS:
            self._flush()
        if tag in _CONTENT and tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag)]
        if tag in ("li", "ul", "ol"):
            self._mark = ""
        if tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        if tag == "pre" and self._pre:
            self._pre -= 1
        elif tag in _HEADINGS:
            self._heading = 0

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip:
            return
        if self._tables and self._tables[-1]["cell"] is not None:
            self._tables[-1]["cell"].append(data)
        else:
            self._buf.append(data)

    def close(self) -> None:
        super().close()
        while self._tables:
            self._end_row(self._tables.pop())
        self._flush()
        self.title = _WS.sub(" ", self.title).strip()


def html_lines(text: str) -> tuple[list[tuple[str, int]], str]:
    """The readable lines of an HTML page, each with its heading level (0: not a heading), and
    the page's <title>."""
    p = _Extract()
    p.feed(text)
    p.close()
    return p.lines, p.title


def html_text(text: str) -> str:
    """The readable text of an HTML page, one line per paragraph, list item or table row."""
    return "\n".join(t for t, _ in html_lines(text)[0])


def html_kind(text: str) -> str:
    """ "contract" when the page's text reads like one, else "text"."""
    try:
        return "contract" if looks_like_contract(html_text(text)) else "text"
    except Exception:  # html.parser is lenient; anything it still trips on is plain text
        return "text"


def parse_html(path: Path, rel: str, kind: str, text: str, max_chars: int) -> list[Document]:
    """One document per run of sections that fits max_chars, cut at the outermost headings first.

    Anchors: "Terms > 4. Termination, ¶ 2-5" (the heading path at the window's start, then the
    paragraphs counted from that heading, which is ¶ 0); a window that runs into another section
    ends "– 5. Governing law, ¶ 3"; a page that is one document, or has no headings, is cited by
    its page-wide paragraph numbers, "¶ 1-19". anchor_data has the
    page-wide paragraph numbers (para_start, para_end; every line is one: paragraph, heading,
    list item, table row), heading_path and heading. In a contract, numbered clauses inside a
    section are headings one level below every h1–h6.
    """
    try:
        lines, title = html_lines(text)
    except Exception as e:
        raise SourceError(rel, f"malformed HTML: {e}") from None
    blocks: list[Block] = []
    for i, (t, level) in enumerate(lines):
        b = Block(no=i + 1, text=t)
        if level:
            b.level, b.label = level, t if len(t) <= 80 else t[:79] + "…"
        elif kind == "contract" and (h := clause_heading(t, allcaps=False)):
            b.level, b.label = 6 + h[0], h[1]
        blocks.append(b)
    if not blocks:
        return []
    paths = heading_paths(blocks)
    section_start: list[int] = []
    last = -1
    for i, b in enumerate(blocks):
        if b.level:
            last = i
        section_start.append(last)

    def rel_no(i: int) -> int:
        return i - section_start[i] if section_start[i] >= 0 else i + 1

    def para(a: int, b: int) -> str:
        if b == 0:
            return ""
        a = max(a, 1)
        return f"¶ {a}" if a == b else f"¶ {a}-{b}"

    docs = []
    windows = split_blocks(blocks, max_chars)
    for w in windows:
        i, j = w[0][0], w[-1][0]
        where = " > ".join(paths[i])
        if len(windows) == 1:  # the whole page
            anchor = para(i + 1, j + 1)
        elif not where:
            anchor = para(i + 1, j + 1) if section_start[j] < 0 else f"¶ {i + 1} – {paths[j][-1]}, {para(0, rel_no(j))}"
        elif section_start[i] == section_start[j]:
            anchor = ", ".join(x for x in (where, para(rel_no(i), rel_no(j))) if x)
        else:
            left = ", ".join(x for x in (where, para(rel_no(i), rel_no(i))) if x)
            right = ", ".join(x for x in (paths[j][-1], para(0, rel_no(j))) if x)
            anchor = f"{left} – {right}"
        docs.append(
            Document(
                path=rel,
                kind=kind,
                anchor=anchor.rstrip(", "),
                anchor_data={
                    "para_start": blocks[i].no,
                    "para_end": blocks[j].no,
                    "heading": span_label(paths, w),
                    "heading_path": list(paths[i]),
                },
                text=join_lines(w),
                title=" > ".join(paths[i]) or title,
            )
        )
    return docs
