"""Which files to ingest, what kind each is, and the one entry point that parses any of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path

from .base import KINDS, Document, SourceError, decode, read_bytes
from .code import CODE_EXTS, parse_code
from .contracts import MARKDOWN_EXTS, parse_docx, parse_pdf, parse_text
from .html import HTML_EXTS, html_kind, parse_html
from .logs import LOG_EXTS, json_lines, maybe_text_log, parse_log, sniff_log
from .structure import looks_like_contract
from .syslog import sniff_text_log
from .timestamps import zone
from .walker import MAX_BYTES, walk_tree

PROSE_EXTS = MARKDOWN_EXTS | {".txt", ".text", ".rst", ".adoc"}
# Structured text that is worth remembering but has no structure we split on.
PLAIN_EXTS = {
    ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".html", ".htm", ".css",
    ".scss", ".csv", ".tsv", ".jsonl", ".ndjson", ".log", ".properties",
}  # fmt: skip
PROSE_NAMES = {"readme", "license", "licence", "copying", "notice", "authors", "changelog", "changes", "contributing"}
CODE_NAMES = {"makefile", "dockerfile", "justfile", "rakefile", "gemfile", "vagrantfile"}

_SNIFF = 64 * 1024


def _head(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(_SNIFF)
    except OSError:
        return None


def _head_text(head: bytes) -> str | None:
    """The sniffed bytes as text, or None when they look binary."""
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 4:  # the sniff window cut a multi-byte character
            return head[: e.start].decode("utf-8-sig")
        return head.decode("latin-1")


def detect_kind(path: Path) -> str | None:
    """"contract" | "code" | "log" | "text" by extension and a look at the content; None when the
    file is binary, unreadable or of a type we do not ingest."""
    path = Path(path)
    ext = path.suffix.lower()
    name = path.name.lower()
    if not path.is_file():
        return None
    if ext in (".pdf", ".docx"):
        return "contract"
    head = _head(path)
    if head is None:
        return None
    text = _head_text(head)
    if text is None:
        return None
    if ext in LOG_EXTS:
        return "log" if sniff_log(path, text) else "text"
    if maybe_text_log(path, text):  # .txt, no extension, rotated (".1"): syslog or logfmt lines
        return "log"
    if ext in HTML_EXTS:
        return html_kind(text)
    if ext in CODE_EXTS or name in CODE_NAMES:
        return "code"
    if ext in PROSE_EXTS or name.split(".")[0] in PROSE_NAMES:
        return "contract" if looks_like_contract(text) else "text"
    if ext in PLAIN_EXTS:
        return "text"
    if not ext and text.startswith("#!"):
        return "code"
    if _plain_text(text):
        # A text file of no known type (LICENSE-like names, NOTICE, `changelog.Debian`, `*.out`,
        # dated extensions): read as prose rather than dropped.
        return "contract" if looks_like_contract(text) else "text"
    return None


def _plain_text(text: str) -> bool:
    """Mostly printable characters in lines of a sane length: prose or a plain record file, not
    minified data or an encoded blob."""
    if not text.strip():
        return False
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    lines = text.splitlines() or [text]
    return printable >= 0.97 * len(text) and sum(len(ln) for ln in lines) / len(lines) < 400


def _relative(path: Path, root: Path) -> str:
    if path == root:
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return path.as_posix()


def parse_file(
    path: Path,
    root: Path,
    *,
    max_chars: int = 2400,
    warnings: list[str] | None = None,
    kind: str | None = None,
    timezone: str | None = None,
) -> list[Document]:
    """Documents for one file, each text at most max_chars and never empty.

    Raises SourceError (one line: ``path: reason``) for what cannot be ingested: unreadable,
    binary or of unknown type, encrypted or damaged PDF/DOCX, a log with no parseable row.
    Non-fatal problems (image-only pages, skipped log rows, syntax errors) are appended to
    ``warnings`` when given, each as ``path: what``. An empty file gives no documents.

    ``kind`` ("contract" | "code" | "log" | "text") forces the parser family instead of detecting
    it (``msa ingest --kind``): a .txt read as a log, a .conf as code. SourceError when the forced
    parser cannot read the file (a PDF as code, a text without timestamps as a log).

    ``timezone`` (``msa ingest --timezone``: an IANA name or an offset) is the zone of log times
    written without one; without it they stay wall-clock times of an unknown zone. ValueError for
    an unknown zone.
    """
    if max_chars < 64:
        raise ValueError(f"max_chars must be at least 64, got {max_chars}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    tz = zone(timezone) if timezone else None
    path, root = Path(path), Path(root)
    rel = _relative(path, root)
    if not path.is_file():
        raise SourceError(rel, "not a file" if path.exists() else "no such file")
    try:
        path.open("rb").close()
    except OSError as e:
        raise SourceError(rel, f"cannot read: {e.strerror or e}") from None
    if kind is not None:
        return _parse_as(kind, path, rel, max_chars, warnings, tz)
    kind = detect_kind(path)
    if kind is None:
        raise SourceError(rel, "not ingestible: binary or unknown file type")
    ext = path.suffix.lower()
    if ext == ".pdf":
        return parse_pdf(path, rel, max_chars, warnings)
    if ext == ".docx":
        return parse_docx(path, rel, max_chars)
    text = decode(read_bytes(path, rel), rel)
    if not text.strip():
        return []
    if kind == "log":
        return parse_log(path, rel, text, max_chars, warnings, tz)
    if ext in HTML_EXTS:
        return parse_html(path, rel, kind, text, max_chars)
    if kind == "code":
        return parse_code(path, rel, text, max_chars, warnings)
    # Headings and clauses only mean something in prose; a YAML or CSV file is cut by lines.
    return parse_text(path, rel, kind, text, max_chars, structured=ext not in PLAIN_EXTS)


def _parse_as(
    kind: str, path: Path, rel: str, max_chars: int, warnings: list[str] | None, tz: tzinfo | None = None
) -> list[Document]:
    """parse_file with the parser family forced."""
    ext = path.suffix.lower()
    if ext in (".pdf", ".docx"):
        if kind not in ("contract", "text"):
            raise SourceError(rel, f"a {ext[1:].upper()} file cannot be read as {kind}")
        docs = parse_pdf(path, rel, max_chars, warnings) if ext == ".pdf" else parse_docx(path, rel, max_chars)
        return [d if d.kind == kind else replace(d, kind=kind) for d in docs]
    text = decode(read_bytes(path, rel), rel)  # SourceError for binary files
    if not text.strip():
        return []
    if kind == "log":
        if ext not in LOG_EXTS and not sniff_text_log(text) and not (ext == ".json" and json_lines(text)):  # the log reader picks CSV or JSON lines by extension
            first = next((ln for ln in text.split("\n", 50) if ln.strip()), "")
            path = path.with_suffix(".jsonl" if first.lstrip().startswith("{") else ".csv")
        return parse_log(path, rel, text, max_chars, warnings, tz)
    if kind == "code":
        return parse_code(path, rel, text, max_chars, warnings)
    if ext in HTML_EXTS:
        return parse_html(path, rel, kind, text, max_chars)
    return parse_text(path, rel, kind, text, max_chars, structured=kind == "contract" or ext not in PLAIN_EXTS)


def walk(
    root: Path,
    skipped: Counter | None = None,
    max_bytes: int = MAX_BYTES,
    *,
    on_skip: Callable[[Path, str], None] | None = None,
) -> Iterator[Path]:
    """The files under root to ingest, sorted by relative path.

    Leaves out hidden entries, tool directories, what ``.gitignore``/``.msaignore`` files exclude,
    vendored directories, generated, binary and oversized (> max_bytes; logs, PDF and DOCX may be
    50x that) files and types we do not ingest. Each one left out is counted in ``skipped``
    (a Counter: ``skipped["binary"] += 1``; a directory counts once) and passed to ``on_skip(path,
    reason)``; the reasons are listed in walker.py. Both are filled as the iterator runs.
    Symlinks are followed only while they stay inside root; loops are not followed, and each real
    file is yielded once.
    """
    return walk_tree(Path(root), detect_kind, skipped, max_bytes, on_skip)
