"""Contracts and prose: PDF page by page, DOCX by heading, TXT/Markdown by heading and clause."""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from .base import Document, SourceError, join_lines, line_range_label, read_bytes
from .structure import Block, clause_heading, heading_paths, looks_like_contract, span_label, split_blocks, text_blocks

MARKDOWN_EXTS = {".md", ".markdown", ".mdown", ".mkd"}


# --- plain text and Markdown -----------------------------------------------------------------


def parse_text(
    path: Path, rel: str, kind: str, text: str, max_chars: int, *, structured: bool = True
) -> list[Document]:
    """A text file cut along its headings and numbered clauses, then along paragraphs and lines."""
    ext = path.suffix.lower()
    style = "plain"
    if structured and ext in MARKDOWN_EXTS:
        style = "markdown"
    elif structured and ext == ".rst":
        style = "rst"
    # Numbered-list items in a README are not clauses; in a contract written in Markdown they are.
    clauses = structured and (style == "plain" or kind == "contract" or looks_like_contract(text))
    blocks = text_blocks(text, style=style, clauses=clauses)
    paths = heading_paths(blocks)
    docs = []
    windows = split_blocks(blocks, max_chars)
    for w in windows:
        a, b = blocks[w[0][0]].no, blocks[w[-1][0]].no
        # A file that fits in one document is cited by its lines alone.
        label = span_label(paths, w) if len(windows) > 1 else ""
        lines = line_range_label([(a, b)])
        docs.append(
            Document(
                path=rel,
                kind=kind,
                anchor=f"{label}, {lines}" if label else lines,
                anchor_data={"line_start": a, "line_end": b, "heading": label, "heading_path": list(paths[w[0][0]])},
                text=join_lines(w),
                title=" > ".join(paths[w[0][0]]),
            )
        )
    return docs


# --- PDF -------------------------------------------------------------------------------------


@contextmanager
def _pypdf_log_to(rel: str, warnings: list[str] | None):
    """pypdf logs recoverable damage at WARNING; keep it off the user's stderr and in our list."""
    logger = logging.getLogger("pypdf")
    seen: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = " ".join(record.getMessage().split())
            if msg not in seen:
                seen.append(msg)

    handler = _Collect(level=logging.WARNING)
    old_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate
        if warnings is not None:
            warnings.extend(f"{rel}: pypdf: {m}" for m in seen[:5])


def parse_pdf(path: Path, rel: str, max_chars: int, warnings: list[str] | None) -> list[Document]:
    """One document per page (several when a page is too long), cited by page number and label."""
    from pypdf import PdfReader  # imported here so `import msa_agent.ingest` stays cheap
    from pypdf.errors import DependencyError

    data = read_bytes(path, rel)
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise SourceError(rel, "malformed PDF: no %PDF header")
    with _pypdf_log_to(rel, warnings):
        try:
            reader = PdfReader(io.BytesIO(data))
            encrypted = reader.is_encrypted
        except DependencyError as e:  # AES without the cryptography package: opening decrypts
            raise SourceError(rel, f"encrypted PDF, cannot decrypt: {e}") from None
        except Exception as e:  # pypdf raises many types for damaged files
            raise SourceError(rel, f"{_damaged(data)}: {e}") from None
        if encrypted:
            try:
                # Many PDFs are encrypted with an owner password only and open with an empty one.
                ok = reader.decrypt("")
            except Exception as e:
                raise SourceError(rel, f"encrypted PDF, cannot decrypt: {e}") from None
            if not ok:
                raise SourceError(rel, "encrypted PDF (password required)")
        try:
            pages = list(reader.pages)
        except Exception as e:
            raise SourceError(rel, f"{_damaged(data)}: {e}") from None
        try:
            labels = list(reader.page_labels)
        except Exception:
            labels = []
        if len(labels) != len(pages):
            labels = [str(i + 1) for i in range(len(pages))]

        page_lines: list[list[str]] = []
        failed = 0
        for i, page in enumerate(pages):
            try:
                text = page.extract_text() or ""
            except Exception as e:
                failed += 1
                if warnings is not None:
                    warnings.append(f"{rel}: p. {i + 1}: text extraction failed ({' '.join(str(e).split())}), skipped")
                text = ""
            else:
                if not text.strip() and warnings is not None:
                    warnings.append(f"{rel}: p. {i + 1}: no extractable text (image-only or blank page), skipped")
            lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
            page_lines.append(lines)

    if not pages:
        raise SourceError(rel, "PDF has no pages")
    if not any(ln.strip() for lines in page_lines for ln in lines):
        if failed == len(pages):
            raise SourceError(rel, "text extraction failed on every page")
        raise SourceError(rel, "no extractable text (scanned or image-only PDF? OCR it first)")

    running = running_lines(page_lines)
    # Headings are tracked across pages so a page that continues a clause is titled by it.
    blocks: list[Block] = []
    starts: list[int] = []
    kept: list[list[int]] = []  # per page: the page line behind each of its blocks
    for lines, drop in zip(page_lines, running):
        starts.append(len(blocks))
        kept.append([j for j in range(len(lines)) if j not in drop])
        for j in kept[-1]:
            b = Block(no=j + 1, text=lines[j])
            if h := clause_heading(lines[j]):
                b.level, b.label = h
            blocks.append(b)
    starts.append(len(blocks))
    paths = heading_paths(blocks)

    docs = []
    for i in range(len(pages)):
        lo, hi = starts[i], starts[i + 1]
        windows = split_blocks(blocks[lo:hi], max_chars)
        spans = _char_spans(page_lines[i], kept[i], windows) if len(windows) > 1 else []
        n, label = i + 1, labels[i]
        for k, w in enumerate(windows, 1):
            anchor = f"p. {n}"
            data: dict = {"page": n}
            if label != str(n):
                anchor += f" (printed '{label}')"
                data["page_label"] = label
            if len(windows) > 1:
                anchor += f", part {k} of {len(windows)}"
                data.update(part=k, parts=len(windows), char_start=spans[k - 1][0], char_end=spans[k - 1][1])
            docs.append(
                Document(
                    path=rel,
                    kind="contract",
                    anchor=anchor,
                    anchor_data=data,
                    text=join_lines(w),
                    title=" > ".join(paths[lo + w[0][0]]),
                )
            )
    return docs


def _damaged(data: bytes) -> str:
    """The start of the reason a PDF cannot be opened: a cut-off download says so."""
    return "malformed PDF" if b"%%EOF" in data[-2048:] else "malformed PDF (truncated? no %%EOF at its end)"


def page_text(lines: list[str]) -> str:
    """The text a PDF part's char_start/char_end count in: the page's extracted text, newlines
    normalised to \\n and trailing spaces of each line removed (running headers still in)."""
    return "\n".join(lines)


def _char_spans(lines: list[str], kept: list[int], windows: list[list[tuple[int, str]]]) -> list[tuple[int, int]]:
    """[char_start, char_end) of each window of a page in page_text(lines)."""
    off = [0]
    for ln in lines:
        off.append(off[-1] + len(ln) + 1)
    text = page_text(lines)
    spans = []
    pos = 0
    for w in windows:
        (k0, t0), (k1, t1) = w[0], w[-1]
        j0, j1 = kept[k0], kept[k1]
        # A line longer than max_chars is cut into slices, each a window of its own, in order.
        s = off[j0] if t0 == lines[j0] else text.find(t0, max(pos, off[j0]))
        # Only a window of one entry can be a slice; the last line of a longer one is whole.
        e = s + len(t0) if len(w) == 1 else off[j1] + len(t1)
        spans.append((s, e))
        pos = e
    return spans


# --- running headers and footers ---------------------------------------------------------------

_EDGE_LINES = 3  # lines at the top and at the bottom of a page that may be running headers/footers
_DIGITS = re.compile(r"\d+")
# "3", "- 3 -", "Page 3", "Page 3 of 12", "3 / 12", "p. 3": with digits as "#", casefolded.
_PAGE_NUMBER = re.compile(r"^(?:page|p\.|pg\.?|seite|página|pagina)?\s*[-–—(\[]?\s*#\s*[-–—)\]]?\s*(?:(?:of|/|von|de|di)\s*#)?$")
_PAGE_NUMBER_IN = re.compile(r"\b(?:page|p\.|pg\.?)\s*#(?!\w)|(?:^|\s)#\s*(?:of|/)\s*#(?!\w)")


def _line_key(line: str) -> str:
    return " ".join(_DIGITS.sub("#", line.casefold()).split())


def running_lines(pages: list[list[str]]) -> list[set[int]]:
    """Per page, the indexes of its running header and footer lines, to be left out of its text.

    A running line sits among the first or last three non-blank lines of a page (at most a third
    of the page's lines) and recurs there, digits aside ("Page 3 of 12", "CONFIDENTIAL – Supply
    Agreement"), on most pages: more than half of the pages with text, or at least half for a
    page number. It must not also be a line of the body of those pages. A document of two pages
    loses a line only when it is on both pages and is a page number or the very same text; a
    document of one page loses nothing.
    """
    out: list[set[int]] = [set() for _ in pages]
    edges: list[list[tuple[int, str]]] = []
    at_edge: Counter[str] = Counter()  # key -> pages with it at an edge
    in_body: Counter[str] = Counter()  # key -> pages with it elsewhere
    raw: dict[str, set[str]] = {}
    n = 0
    for lines in pages:
        idx = [j for j, ln in enumerate(lines) if ln.strip()]
        n += bool(idx)
        z = min(_EDGE_LINES, len(idx) // 3)
        edge = idx[:z] + idx[len(idx) - z :] if z else []
        keys = [(j, _line_key(lines[j])) for j in edge]
        edges.append(keys)
        edge_keys = {k for _, k in keys}
        edge_set = set(edge)
        at_edge.update(edge_keys)
        in_body.update({_line_key(lines[j]) for j in idx if j not in edge_set})
        for j, k in keys:
            raw.setdefault(k, set()).add(lines[j].strip())
    if n < 2:
        return out

    def running(key: str) -> bool:
        c = at_edge[key]
        if c < 2 or in_body[key] * 4 > c or len(key) > 200:
            return False
        page_no = bool(_PAGE_NUMBER.match(key) or _PAGE_NUMBER_IN.search(key))
        if n == 2:
            return page_no or len(raw[key]) == 1
        return c * 2 >= n if page_no else c * 2 > n

    repeated = {k for k in at_edge if running(k)}
    for keys, drop in zip(edges, out):
        drop.update(j for j, k in keys if k in repeated)
    return out


# --- DOCX ------------------------------------------------------------------------------------


def _heading_level(style_name: str) -> int:
    name = style_name.strip().lower()
    if name == "title":  # above "Heading 1", so the document title heads every path
        return 1
    if name.startswith("heading"):
        tail = name[len("heading") :].strip()
        return 1 + (int(tail) if tail.isdigit() else 1)
    return 0


# What a zip (or a file) given a .docx name really is, by a member or the leading bytes.
_OTHER_PACKAGES = [
    ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (.pptx)"),
    ("visio/document.xml", "a Visio drawing (.vsdx)"),
    ("mimetype", "an OpenDocument file (.odt/.ods/.odp)"),
    ("META-INF/MANIFEST.MF", "a Java archive (.jar)"),
    ("AndroidManifest.xml", "an Android package (.apk)"),
]
_MAGIC = [
    (b"PK", "a damaged or truncated zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 compound file: a legacy .doc, or a password-protected DOCX"),
    (b"%PDF", "a PDF"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip file"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
]


def _looks_textual(head: bytes) -> bool:
    text = head.decode("utf-8", errors="ignore")
    return bool(text.strip()) and not any(ord(c) < 32 and c not in "\t\n\r\f" for c in text)


DOCX_MAX_UNPACKED = 100_000_000  # bytes a DOCX's zip members may declare, in all


def _check_docx_package(data: bytes, rel: str) -> None:
    """SourceError with what the file is when it is not a Word document's zip package."""
    import zipfile

    if not data:
        raise SourceError(rel, "malformed DOCX: empty file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            unpacked = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile:
        what = next((w for magic, w in _MAGIC if data.startswith(magic)), None)
        if what is None and data.lstrip()[:1] == b"<":
            what = "an XML or HTML text file"
        if what is None and _looks_textual(data[:4096]):
            what = "a text file"
        raise SourceError(rel, f"malformed DOCX: not a zip archive{f' ({what})' if what else ''}") from None
    except Exception as e:  # a damaged central directory, a zip64 oddity...
        raise SourceError(rel, f"malformed DOCX: unreadable zip archive: {e}") from None
    if unpacked > DOCX_MAX_UNPACKED:  # a zip bomb: refused before anything is decompressed
        raise SourceError(rel, f"DOCX too large once unpacked ({unpacked / 1e6:.0f} MB declared; the limit is "
                               f"{DOCX_MAX_UNPACKED / 1e6:g} MB); not read")
    if "word/document.xml" in names or "[Content_Types].xml" in names and any(n.startswith("word/") for n in names):
        return
    what = next((w for member, w in _OTHER_PACKAGES if member in names), None)
    if what is None:
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        what = f"a zip of {len(names)} file(s): {shown}" if names else "an empty zip archive"
    raise SourceError(rel, f"not a Word document: no word/document.xml in the zip; it is {what}")


def parse_docx(path: Path, rel: str, max_chars: int) -> list[Document]:
    """Paragraphs and table rows in body order, cut along Word headings and numbered clauses."""
    import zipfile

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    data = read_bytes(path, rel)
    _check_docx_package(data, rel)
    try:
        d = docx.Document(io.BytesIO(data))
        items = list(d.iter_inner_content())
    except zipfile.BadZipFile:
        raise SourceError(rel, "malformed DOCX: not a zip archive") from None
    except Exception as e:
        raise SourceError(rel, f"malformed DOCX: {e}") from None

    blocks: list[Block] = []
    for item in items:
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            b = Block(no=len(blocks) + 1, text=text)
            try:
                level = _heading_level(item.style.name if item.style is not None else "")
            except Exception:
                level = 0
            if level:
                b.level, b.label = level, text if len(text) <= 80 else text[:79] + "…"
            elif h := clause_heading(text):
                b.level, b.label = h
            blocks.append(b)
        elif isinstance(item, Table):
            for row in item.rows:
                cells, seen = [], set()
                for cell in row.cells:
                    # A merged cell is returned once per grid column it spans.
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    cells.append(" ".join(cell.text.split()))
                if any(cells):
                    blocks.append(Block(no=len(blocks) + 1, text=" | ".join(cells)))
    if not blocks:
        return []

    paths = heading_paths(blocks)
    # Paragraphs are numbered from the innermost heading, which is the last heading seen.
    section_start: list[int] = []
    last = -1
    for i, b in enumerate(blocks):
        if b.level:
            last = i
        section_start.append(last)

    def rel_no(i: int) -> int:
        return i - section_start[i] if section_start[i] >= 0 else i + 1

    docs = []
    windows = split_blocks(blocks, max_chars)
    for w in windows:
        i, j = w[0][0], w[-1][0]
        a, b = paths[i][-1] if paths[i] else "", paths[j][-1] if paths[j] else ""
        ra, rb = max(rel_no(i), 1), rel_no(j)
        if len(windows) == 1:  # the whole document
            anchor = f"¶ {blocks[i].no}-{blocks[j].no}" if j > i else f"¶ {blocks[i].no}"
        elif section_start[i] == section_start[j]:
            para = "" if rb == 0 else (f"¶ {ra}" if ra == rb else f"¶ {ra}-{rb}")
            anchor = ", ".join(x for x in (a, para) if x)
        else:
            left = a if rel_no(i) == 0 else ", ".join(x for x in (a, f"¶ {ra}") if x)
            right = ", ".join(x for x in (b, f"¶ {rb}" if rb else "") if x)
            anchor = f"{left} – {right}"
        docs.append(
            Document(
                path=rel,
                kind="contract",
                anchor=anchor,
                anchor_data={
                    "para_start": blocks[i].no,
                    "para_end": blocks[j].no,
                    "heading": span_label(paths, w),
                    "heading_path": list(paths[i]),
                },
                text=join_lines(w),
                title=" > ".join(paths[i]),
            )
        )
    return docs
