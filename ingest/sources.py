"""Which files to ingest, what kind each is, and the one entry point that parses any of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .base import Document, SourceError, decode, read_bytes
from .code import CODE_EXTS, parse_code
from .contracts import MARKDOWN_EXTS, parse_docx, parse_pdf, parse_text
from .logs import LOG_EXTS, parse_log, sniff_log
from .structure import looks_like_contract

PROSE_EXTS = MARKDOWN_EXTS | {".txt", ".text", ".rst", ".adoc"}
# Structured text that is worth remembering but has no structure we split on.
PLAIN_EXTS = {
    ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".html", ".htm", ".css",
    ".scss", ".csv", ".tsv", ".jsonl", ".ndjson", ".log", ".properties",
}  # fmt: skip
PROSE_NAMES = {"readme", "license", "licence", "copying", "notice", "authors", "changelog", "changes", "contributing"}
CODE_NAMES = {"makefile", "dockerfile", "justfile", "rakefile", "gemfile", "vagrantfile"}
SKIP_DIRS = {".git", "__pycache__", "node_modules", "site-packages", ".venv", "venv", ".tox", ".mypy_cache"}

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
    if ext in CODE_EXTS or name in CODE_NAMES:
        return "code"
    if ext in PROSE_EXTS or name.split(".")[0] in PROSE_NAMES:
        return "contract" if looks_like_contract(text) else "text"
    if ext in PLAIN_EXTS:
        return "text"
    if not ext and text.startswith("#!"):
        return "code"
    return None


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


def parse_file(path: Path, root: Path, *, max_chars: int = 2400, warnings: list[str] | None = None) -> list[Document]:
    """Documents for one file, each text at most max_chars and never empty.

    Raises SourceError (one line: ``path: reason``) for what cannot be ingested: unreadable,
    binary or of unknown type, encrypted or damaged PDF/DOCX, a log with no parseable row.
    Non-fatal problems (image-only pages, skipped log rows, syntax errors) are appended to
    ``warnings`` when given, each as ``path: what``. An empty file gives no documents.
    """
    if max_chars < 64:
        raise ValueError(f"max_chars must be at least 64, got {max_chars}")
    path, root = Path(path), Path(root)
    rel = _relative(path, root)
    if not path.is_file():
        raise SourceError(rel, "not a file" if path.exists() else "no such file")
    try:
        path.open("rb").close()
    except OSError as e:
        raise SourceError(rel, f"cannot read: {e.strerror or e}") from None
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
        return parse_log(path, rel, text, max_chars, warnings)
    if kind == "code":
        return parse_code(path, rel, text, max_chars, warnings)
    # Headings and clauses only mean something in prose; a YAML or CSV file is cut by lines.
    return parse_text(path, rel, kind, text, max_chars, structured=ext not in PLAIN_EXTS)


def _is_venv(d: Path) -> bool:
    return (d / "pyvenv.cfg").is_file()


def walk(root: Path) -> Iterator[Path]:
    """The ingestible files under root (those detect_kind accepts), sorted by relative path.

    Skips hidden files and directories, .git, __pycache__, node_modules and virtualenvs. Symlinks
    are followed only while they stay inside root, and each real file is yielded once.
    """
    root = Path(root)
    if root.is_file():
        if detect_kind(root) is not None:
            yield root
        return
    real_root = root.resolve()
    seen: set[Path] = set()
    found: list[tuple[str, Path]] = []

    def inside(p: Path) -> Path | None:
        try:
            real = p.resolve()
        except (OSError, RuntimeError):
            return None
        return real if real == real_root or real_root in real.parents else None

    def visit(d: Path, rel: str) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            real = inside(p) if e.is_symlink() else p.resolve()
            if real is None or real in seen:
                continue
            r = f"{rel}/{e.name}" if rel else e.name
            try:
                is_dir = e.is_dir()  # follows a symlink, which inside() has vetted
            except OSError:
                continue
            if is_dir:
                if e.name in SKIP_DIRS or e.name.endswith(".egg-info") or _is_venv(p):
                    continue
                seen.add(real)
                visit(p, r)
            elif e.is_file():
                seen.add(real)
                found.append((r, p))

    seen.add(real_root)
    visit(root, "")
    for _, p in sorted(found):
        if detect_kind(p) is not None:
            yield p
