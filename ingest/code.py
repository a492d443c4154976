"""Source code: Python and JavaScript by definition (tree-sitter), other languages by line windows."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .base import Document, compress_lines, join_lines, line_range_label, pack_lines, trim_blank

PYTHON_EXTS = {".py", ".pyi", ".pyw"}
JS_EXTS = {".js", ".mjs", ".cjs", ".jsx"}
# Code we cannot parse yet: cited by line windows, and marked so the caller can say so.
FALLBACK_EXTS = {
    ".ts", ".tsx", ".mts", ".cts", ".go", ".rs", ".java", ".kt", ".kts", ".scala", ".swift",
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cs", ".fs", ".m", ".mm",
    ".sh", ".bash", ".zsh", ".ps1", ".bat", ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".jl",
    ".sql", ".dart", ".ex", ".exs", ".erl", ".hs", ".clj", ".groovy", ".vue", ".svelte",
    ".cu", ".cuh", ".proto", ".tf", ".cmake", ".mk",
}  # fmt: skip
CODE_EXTS = PYTHON_EXTS | JS_EXTS | FALLBACK_EXTS
FALLBACK_LINES = 60

_PY_DEFS = {"function_definition", "class_definition"}
_JS_FUNCS = {"function_declaration", "generator_function_declaration"}
_JS_VALUES = {"arrow_function", "function_expression", "function", "generator_function", "class"}


@lru_cache(maxsize=None)
def _parser(lang: str):
    from tree_sitter import Language, Parser

    if lang == "python":
        import tree_sitter_python as ts_lang
    else:
        import tree_sitter_javascript as ts_lang
    return Parser(Language(ts_lang.language()))


def _name(node) -> str:
    n = node.child_by_field_name("name")
    return n.text.decode("utf-8", "replace") if n is not None else ""


def _definition(node, lang: str) -> tuple[str, object] | None:
    """(name, the function/class node) when a top-level or class-body node defines something."""
    t = node.type
    if lang == "python":
        if t == "decorated_definition":
            inner = node.child_by_field_name("definition")
            return (_name(inner), inner) if inner is not None else None
        if t in _PY_DEFS:
            return _name(node), node
        return None
    if t in _JS_FUNCS or t in ("class_declaration", "class", "method_definition"):
        return _name(node) or "default", node
    if t == "export_statement":
        for c in node.named_children:
            if d := _definition(c, lang):
                return d
        return None
    if t in ("lexical_declaration", "variable_declaration"):
        for decl in node.named_children:
            value = decl.child_by_field_name("value")
            if decl.type == "variable_declarator" and value is not None and value.type in _JS_VALUES:
                return _name(decl), value
    return None


def _is_class(node) -> bool:
    return node.type in ("class_definition", "class_declaration", "class")


def _rows(node) -> tuple[int, int]:
    """1-based inclusive line span of a node."""
    (r0, _), (r1, c1) = node.start_point, node.end_point
    if c1 == 0 and r1 > r0:  # ends at the start of the next line
        r1 -= 1
    return r0 + 1, r1 + 1


def _with_leading_comments(node, start: int) -> int:
    """Move a definition's first line up over the comments that sit right above it (docs, JSDoc)."""
    prev = node.prev_named_sibling
    while prev is not None and prev.type == "comment":
        p0, p1 = _rows(prev)
        if p1 != start - 1:
            break
        # A trailing comment on the previous statement's line is not about this definition.
        before = prev.prev_sibling
        if before is not None and before.end_point[0] == prev.start_point[0]:
            break
        start = p0
        prev = prev.prev_named_sibling
    return start


def _members(class_node, lang: str) -> list[tuple[str, int, int]]:
    body = class_node.child_by_field_name("body")
    out = []
    if body is None:
        return out
    for c in body.named_children:
        d = _definition(c, lang)
        if d is None:
            continue
        a, b = _rows(c)
        out.append((d[0], _with_leading_comments(c, a), b))
    return out


class _Emitter:
    def __init__(self, rel: str, lines: list[str], max_chars: int):
        self.rel, self.lines, self.max_chars = rel, lines, max_chars
        self.docs: list[Document] = []

    def numbered(self, rows: list[int]) -> list[tuple[int, str]]:
        return [(r, self.lines[r - 1]) for r in rows]

    def emit(self, rows: list[int], symbol: str, extra: dict | None = None, max_lines: int | None = None) -> None:
        """Documents for these source lines (split into windows when too long), cited by line ranges."""
        # Each run of consecutive lines loses its blank edges, so gaps left by definitions do not
        # pile up blank lines or widen the cited ranges.
        numbered = []
        for a, b in compress_lines(rows):
            numbered += trim_blank(self.numbered(list(range(a, b + 1))))
        if not numbered:
            return
        text = join_lines(numbered)
        if len(text) <= self.max_chars and max_lines is None:
            windows = [numbered]
        else:
            windows = pack_lines(numbered, self.max_chars, max_lines)
        for k, w in enumerate(windows, 1):
            ranges = compress_lines([n for n, _ in w])
            data: dict = {"line_start": ranges[0][0], "line_end": ranges[-1][1]}
            if len(ranges) > 1:
                data["line_ranges"] = [list(r) for r in ranges]
            if symbol:
                data["symbol"] = symbol
            if len(windows) > 1 and max_lines is None:
                data.update(part=k, parts=len(windows))
            data.update(extra or {})
            self.docs.append(
                Document(
                    path=self.rel,
                    kind="code",
                    anchor=line_range_label(ranges),
                    anchor_data=data,
                    text=join_lines(w),
                    title=symbol if symbol != "<module>" else "",
                )
            )


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_code(path: Path, rel: str, text: str, max_chars: int, warnings: list[str] | None) -> list[Document]:
    """One document per top-level function and class (per method when a class is too big), plus
    one for the module-level lines; languages without a parser get marked line windows."""
    ext = path.suffix.lower()
    lines = _split_lines(text)
    em = _Emitter(rel, lines, max_chars)
    lang = "python" if ext in PYTHON_EXTS else "javascript" if ext in JS_EXTS else None
    if lang is None:
        em.emit(list(range(1, len(lines) + 1)), "", {"fallback": "line-windows"}, max_lines=FALLBACK_LINES)
        return em.docs

    tree = _parser(lang).parse(text.encode("utf-8"))
    root = tree.root_node
    if root.has_error and warnings is not None:
        warnings.append(f"{rel}: syntax errors; definitions were extracted around them")

    module_rows = set(range(1, len(lines) + 1))
    defs: list[tuple[list[int], str, object]] = []
    for node in root.named_children:
        d = _definition(node, lang)
        if d is None:
            continue
        name, inner = d
        a, b = _rows(node)
        a = _with_leading_comments(node, a)
        rows = list(range(a, b + 1))
        module_rows.difference_update(rows)
        defs.append((rows, name, inner))

    em.emit(sorted(module_rows), "<module>")
    for rows, name, inner in defs:
        size = sum(len(lines[r - 1]) + 1 for r in rows) - 1
        if size <= max_chars or not _is_class(inner):
            em.emit(rows, name)
            continue
        # Too big a class: its own lines (header, docstring, attributes) and then each method.
        own = set(rows)
        members = _members(inner, lang)
        for _, a, b in members:
            own.difference_update(range(a, b + 1))
        em.emit(sorted(own), name)
        for member, a, b in members:
            em.emit(list(range(a, b + 1)), f"{name}.{member}")
    return em.docs
