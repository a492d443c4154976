"""The record every source turns into, the one error type, and helpers shared by the parsers."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("contract", "code", "log", "text")


@dataclass(frozen=True)
class Document:
    """One independently encoded piece of a source, with where it came from."""

    path: str  # source path relative to the ingested root, posix style
    kind: str  # "contract" | "code" | "log" | "text"
    anchor: str  # human-readable citation anchor: "p. 3", "lines 10-42", "§ 4.2 Termination, ¶ 3-5", ...
    anchor_data: dict = field(hash=False)  # JSON-serialisable form of the anchor
    text: str  # verbatim source text: what gets encoded, injected and quoted
    title: str = ""  # symbol name, heading, sensor id...


class SourceError(Exception):
    """A source that cannot be ingested; the message is one line: ``path: reason``."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unknown error"
        # args are the constructor's, so the error survives pickling (parsing in worker processes).
        super().__init__(self.path, self.reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# --- reading ---------------------------------------------------------------------------------


def read_bytes(path: Path, rel: str) -> bytes:
    """The file's bytes, never through a symbolic link: the walker refused links when it scanned,
    and a file swapped for one since (to reach outside the ingested directory) is not read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SourceError(rel, "became a symbolic link after the scan; not followed") from None
        raise SourceError(rel, f"cannot read: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except OSError as e:
        raise SourceError(rel, f"cannot read: {e.strerror or e}") from None


def decode(data: bytes, rel: str) -> str:
    """UTF-8 (BOM tolerated), else latin-1 when the bytes are not binary; newlines normalised to \\n."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\x00" in data:
            raise SourceError(rel, "not text: undecodable as UTF-8 and contains NUL bytes") from None
        # latin-1 maps every byte, so this only loses accents, never content.
        text = data.decode("latin-1")
    if "\x00" in text:
        raise SourceError(rel, "not text: contains NUL bytes")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- line windows ----------------------------------------------------------------------------


def line_range_label(ranges: list[tuple[int, int]]) -> str:
    """[(1, 8), (43, 45), (90, 90)] -> "lines 1-8, 43-45, 90"."""
    parts = [f"{a}-{b}" if b > a else f"{a}" for a, b in ranges]
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return f"line {parts[0]}"
    return "lines " + ", ".join(parts)


def compress_lines(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted line numbers -> inclusive ranges of consecutive numbers."""
    ranges: list[tuple[int, int]] = []
    for n in sorted(numbers):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], n)
        elif not ranges or n > ranges[-1][1]:
            ranges.append((n, n))
    return ranges


def trim_blank(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Drop blank lines at both ends of a run of (line number, text)."""
    a, b = 0, len(lines)
    while a < b and not lines[a][1].strip():
        a += 1
    while b > a and not lines[b - 1][1].strip():
        b -= 1
    return lines[a:b]


def pack_lines(
    lines: list[tuple[int, str]], max_chars: int, max_lines: int | None = None
) -> list[list[tuple[int, str]]]:
    """Split numbered lines into windows whose joined text fits max_chars (and max_lines).

    Windows break at a blank line when one lies in the back half of the window, so paragraphs
    stay whole where they can, and are evened out so the last is not a scrap. A single line
    longer than max_chars becomes several windows of the same line number, each a slice of it.
    Blank lines at window edges are dropped.
    """
    windows = _pack_greedy(lines, max_chars, max_lines)
    n = len(windows)
    if n > 1:
        # Same number of windows, each about 1/n of the text, when that packing exists.
        total = sum(len(t) + 1 for _, t in lines)
        chars = min(max_chars, int(total / n * 1.15) + 1)
        nlines = None if max_lines is None else min(max_lines, int(len(lines) / n * 1.15) + 1)
        even = _pack_greedy(lines, chars, nlines)
        if len(even) <= n:
            return even
    return windows


def _pack_greedy(
    lines: list[tuple[int, str]], max_chars: int, max_lines: int | None
) -> list[list[tuple[int, str]]]:
    windows: list[list[tuple[int, str]]] = []
    cur: list[tuple[int, str]] = []
    size = -1  # joined length of cur: sum(len) + separators

    def flush(upto: int | None = None) -> None:
        nonlocal cur, size
        head, rest = (cur, []) if upto is None else (cur[:upto], cur[upto:])
        head = trim_blank(head)
        if head:
            windows.append(head)
        cur = rest
        size = sum(len(t) + 1 for _, t in cur) - 1

    for no, text in lines:
        if len(text) > max_chars:
            flush()
            for i in range(0, len(text), max_chars):
                windows.append([(no, text[i : i + max_chars])])
            continue
        full = size + 1 + len(text) > max_chars or (max_lines is not None and len(cur) >= max_lines)
        if full and cur:
            # Prefer to break after the last blank line in the back half of the window.
            cut = None
            for i in range(len(cur) - 1, len(cur) // 2, -1):
                if not cur[i][1].strip():
                    cut = i + 1
                    break
            flush(cut)
            if size + 1 + len(text) > max_chars or (max_lines is not None and len(cur) >= max_lines):
                flush()
        cur.append((no, text))
        size += 1 + len(text)
    flush()
    return [w for w in windows if any(t.strip() for _, t in w)]


def join_lines(lines: list[tuple[int, str]]) -> str:
    return "\n".join(t for _, t in lines)
