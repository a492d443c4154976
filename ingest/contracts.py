"""Contracts and prose: PDF page by page, DOCX by heading, TXT/Markdown by heading and clause."""

from __future__ import annotations

import io
import logging
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

    data = read_bytes(path, rel)
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise SourceError(rel, "malformed PDF: no %PDF header")
    with _pypdf_log_to(rel, warnings):
        try:
            reader = PdfReader(io.BytesIO(data))
            encrypted = reader.is_encrypted
        except Exception as e:  # pypdf raises many types for damaged files
            raise SourceError(rel, f"malformed PDF: {e}") from None
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
            raise SourceError(rel, f"malformed PDF: {e}") from None
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

    # Headings are tracked across pages so a page that continues a clause is titled by it.
    blocks: list[Block] = []
    starts: list[int] = []
    for lines in page_lines:
        starts.append(len(blocks))
        for j, ln in enumerate(lines):
            b = Block(no=j + 1, text=ln)
            if h := clause_heading(ln):
                b.level, b.label = h
            blocks.append(b)
    starts.append(len(blocks))
    paths = heading_paths(blocks)

    docs = []
    for i in range(len(pages)):
        lo, hi = starts[i], starts[i + 1]
        windows = split_blocks(blocks[lo:hi], max_chars)
        n, label = i + 1, labels[i]
        for k, w in enumerate(windows, 1):
            anchor = f"p. {n}"
            data: dict = {"page": n}
            if label != str(n):
                anchor += f" (printed '{label}')"
                data["page_label"] = label
            if len(windows) > 1:
                anchor += f", part {k} of {len(windows)}"
                data.update(part=k, parts=len(windows))
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


# --- DOCX ------------------------------------------------------------------------------------


def _heading_level(style_name: str) -> int:
    name = style_name.strip().lower()
    if name == "title":  # above "Heading 1", so the document title heads every path
        return 1
    if name.startswith("heading"):
        tail = name[len("heading") :].strip()
        return 1 + (int(tail) if tail.isdigit() else 1)
    return 0


def parse_docx(path: Path, rel: str, max_chars: int) -> list[Document]:
    """Paragraphs and table rows in body order, cut along Word headings and numbered clauses."""
    import zipfile

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    data = read_bytes(path, rel)
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
