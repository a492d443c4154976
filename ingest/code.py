"""Source code by definition (tree-sitter), other languages by line windows.

Parsed: Python, JavaScript, TypeScript (+TSX), Go, Rust, Java, C, C++, C# and Bash, each from its
own grammar wheel (nothing is downloaded at run time). A file gives one document for its
module-level lines (imports, constants, top-level statements) and one per top-level definition,
with the comments and attributes right above it; a class too big for one document is split into
its own lines and its members. Namespaces (C++, C#, TypeScript, Rust ``mod``) are scopes, not
documents: what they hold is cited as ``Namespace.Symbol``.

Symbols (``anchor_data["symbol"]``):

- Python, JavaScript, TypeScript, Java, C#, C++: ``Class``, ``Class.method``, ``Outer.Inner.m``;
  C++ and C# namespaces and TypeScript namespaces prefix them (``geo.Shape.area``); a C++
  out-of-line ``Shape::area`` is ``Shape.area``.
- Go: ``pkg.Func`` and ``pkg.Type``; methods by their receiver type, ``Type.Method``.
- Rust: ``fn``/``struct``/``enum``/``trait`` by name (``mod`` prefixes them); an ``impl`` block is
  ``impl Type`` or ``impl Trait for Type`` and, when split, its functions are ``Type.fn``.
- C: functions, and structs/unions/enums by tag or typedef name. Bash: functions by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from .base import Document, compress_lines, join_lines, line_range_label, pack_lines, trim_blank

PYTHON_EXTS = {".py", ".pyi", ".pyw"}
JS_EXTS = {".js", ".mjs", ".cjs", ".jsx"}
# Extension -> grammar. ".h" is tried as C first, then as C++ when C cannot parse it.
LANG_EXTS = {
    **{e: "python" for e in PYTHON_EXTS},
    **{e: "javascript" for e in JS_EXTS},
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp", ".inl": "cpp",
    ".cs": "csharp",
    ".sh": "bash", ".bash": "bash",
}  # fmt: skip
# Code we cannot parse yet: cited by line windows, and marked so the caller can say so.
FALLBACK_EXTS = {
    ".kt", ".kts", ".scala", ".swift", ".fs", ".m", ".mm", ".zsh", ".ps1", ".bat", ".rb", ".php",
    ".pl", ".pm", ".lua", ".r", ".jl", ".sql", ".dart", ".ex", ".exs", ".erl", ".hs", ".clj",
    ".groovy", ".vue", ".svelte", ".cu", ".cuh", ".proto", ".tf", ".cmake", ".mk", ".pyx", ".pxd",
    ".pxi", ".f", ".f90", ".f95", ".f03", ".for",
}  # fmt: skip
CODE_EXTS = set(LANG_EXTS) | FALLBACK_EXTS
FALLBACK_LINES = 60

# Grammar wheel and the function in it that returns the language.
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "bash": ("tree_sitter_bash", "language"),
}
# Interpreters named on a "#!" line of a file without an extension.
_SHEBANG_LANGS = {"python": "python", "node": "javascript", "bash": "bash", "sh": "bash", "dash": "bash", "ksh": "bash"}

_COMMENTS = {"comment", "line_comment", "block_comment"}
_ATTRIBUTES = {"attribute_item"}  # Rust #[derive(...)] sits beside the item it annotates


@lru_cache(maxsize=None)
def _parser(lang: str):
    import importlib

    from tree_sitter import Language, Parser

    module, fn = _GRAMMARS[lang]
    return Parser(Language(getattr(importlib.import_module(module), fn)()))


# A .h that says any of these is C++ (C would parse `namespace x {...}` as a K&R function).
_CPP_HEADER = re.compile(
    r"^\s*(?:namespace\b|class\s+\w+[^;]*$|template\s*<|(?:public|private|protected)\s*:|using\s+namespace\b)"
    r"|\b\w+::~?\w+",
    re.M,
)


def language_of(path: Path, text: str = "") -> str | None:
    """The grammar for a file: by extension, or by the "#!" line of a file without one."""
    ext = path.suffix.lower()
    if ext == ".h" and _CPP_HEADER.search(text):
        return "cpp"
    if ext in LANG_EXTS:
        return LANG_EXTS[ext]
    if not ext and text.startswith("#!"):
        words = text[2:].split("\n", 1)[0].split()
        if words and words[0].rsplit("/", 1)[-1] == "env":  # #!/usr/bin/env [-S] python3
            words = [w for w in words[1:] if not w.startswith("-")]
        if words:
            return _SHEBANG_LANGS.get(re.sub(r"[\d.]+$", "", words[0].rsplit("/", 1)[-1]))
    return None


# --- definitions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Def:
    symbol: str  # qualified symbol of the document
    node: object  # the node whose lines it spans (with export/decorator/template wrappers)
    body: object | None = None  # a class-like definition: the node holding its members
    qual: str = ""  # what its members are qualified with; the symbol when empty


@dataclass(frozen=True)
class _Scope:
    """A namespace-like node: not a document itself; its children are looked at as definitions."""

    prefix: str  # qualifier for what is inside
    children: tuple
    following: bool = False  # C# `namespace X;`: qualifies the siblings after it


def _text(node) -> str:
    return " ".join(node.text.decode("utf-8", "replace").split()) if node is not None else ""


def _field(node, name: str):
    return node.child_by_field_name(name)


def _name(node) -> str:
    return _text(_field(node, "name"))


def _q(prefix: str, name: str) -> str:
    if len(name) > 120 or "{" in name or ";" in name:  # error recovery swallowed a body (macros in C++)
        ids = re.findall(r"[A-Za-z_~][\w]*", re.split(r"[{;(]", name, maxsplit=1)[0])
        name = ids[-1] if ids else ""
    return f"{prefix}.{name}" if prefix and name else name or prefix


def _rows(node) -> tuple[int, int]:
    """1-based inclusive line span of a node."""
    (r0, _), (r1, c1) = node.start_point, node.end_point
    if c1 == 0 and r1 > r0:  # ends at the start of the next line
        r1 -= 1
    return r0 + 1, r1 + 1


def _py(node, prefix: str, ctx: dict):
    t = node.type
    if t == "decorated_definition":
        inner = _field(node, "definition")
        d = _py(inner, prefix, ctx) if inner is not None else None
        return replace(d, node=node) if isinstance(d, _Def) else None
    if t == "function_definition":
        return _Def(_q(prefix, _name(node)), node)
    if t == "class_definition":
        return _Def(_q(prefix, _name(node)), node, _field(node, "body"))
    return None


_JS_FUNCS = {"function_declaration", "generator_function_declaration", "function_signature"}
_JS_CLASSES = {"class_declaration", "abstract_class_declaration", "class", "interface_declaration"}
_JS_TYPES = {"enum_declaration", "type_alias_declaration"}
_JS_MEMBERS = {"method_definition", "method_signature", "abstract_method_signature"}
_JS_VALUES = {"arrow_function", "function_expression", "function", "generator_function", "class"}


def _js(node, prefix: str, ctx: dict):
    """JavaScript and TypeScript."""
    t = node.type
    if t in _JS_FUNCS or t in _JS_MEMBERS or t in _JS_TYPES:
        return _Def(_q(prefix, _name(node) or "default"), node)
    if t in _JS_CLASSES:
        return _Def(_q(prefix, _name(node) or "default"), node, _field(node, "body"))
    if t in ("export_statement", "ambient_declaration", "expression_statement"):
        for c in node.named_children:
            d = _js(c, prefix, ctx)
            if isinstance(d, _Def):
                return replace(d, node=node)
            if d is not None:
                return d
        return None
    if t in ("internal_module", "module"):  # namespace N {...}, declare module "m" {...}
        body = _field(node, "body")
        name = _name(node).strip("\"'`")
        return _Scope(_q(prefix, name), tuple(body.named_children)) if body is not None else None
    if t == "statement_block" and node.parent is not None and node.parent.type == "ambient_declaration":
        return _Scope(_q(prefix, "global"), tuple(node.named_children))  # declare global {...}
    if t in ("field_definition", "public_field_definition"):  # handler = () => {...}
        value = _field(node, "value")
        if value is not None and value.type in _JS_VALUES:
            return _Def(_q(prefix, _text(_field(node, "name") or _field(node, "property"))), node)
        return None
    if t in ("lexical_declaration", "variable_declaration"):
        for decl in node.named_children:
            value = _field(decl, "value")
            if decl.type == "variable_declarator" and value is not None and value.type in _JS_VALUES:
                return _Def(_q(prefix, _name(decl)), node, _field(value, "body") if value.type == "class" else None)
    return None


def _go(node, prefix: str, ctx: dict):
    t = node.type
    pkg = ctx.get("package", "")
    if t == "function_declaration":
        return _Def(_q(pkg, _name(node)), node)
    if t == "method_declaration":
        recv = _field(node, "receiver")
        typ = ""
        for p in recv.named_children if recv is not None else ():
            ty = _field(p, "type")
            while ty is not None and ty.type in ("pointer_type", "generic_type", "parenthesized_type"):
                ty = _field(ty, "type") or (ty.named_children[0] if ty.named_children else None)
            typ = _text(ty)
        return _Def(_q(typ, _name(node)), node)
    if t == "type_declaration":
        specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
        if len(specs) == 1:
            return _Def(_q(pkg, _name(specs[0])), node)
        return _Scope(prefix, tuple(node.named_children))  # type ( A ...; B ... )
    if t in ("type_spec", "type_alias"):
        return _Def(_q(pkg, _name(node)), node)
    return None


def _type_base(node) -> str:
    """`Wrapper<T>` -> Wrapper, `crate::a::B` -> B, `&'a mut T` -> T."""
    s = re.sub(r"<.*>", "", _text(node))
    return re.split(r"::|\s", s.strip("&* "))[-1] if s else ""


def _rust(node, prefix: str, ctx: dict):
    t = node.type
    if t in ("function_item", "function_signature_item", "struct_item", "enum_item", "union_item", "macro_definition"):
        return _Def(_q(prefix, _name(node)), node)
    if t == "trait_item":
        return _Def(_q(prefix, _name(node)), node, _field(node, "body"))
    if t == "impl_item":
        typ, trait = _field(node, "type"), _field(node, "trait")
        base = _q(prefix, _type_base(typ))
        head = f"{_text(trait)} for {base}" if trait is not None else base
        return _Def(f"impl {head}", node, _field(node, "body"), qual=base)
    if t == "mod_item":
        body = _field(node, "body")
        return _Scope(_q(prefix, _name(node)), tuple(body.named_children)) if body is not None else None
    return None


_JAVA_CLASSES = {
    "class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
    "annotation_type_declaration",
}  # fmt: skip
_JAVA_METHODS = {"method_declaration", "constructor_declaration", "compact_constructor_declaration"}


def _java(node, prefix: str, ctx: dict):
    t = node.type
    if t in _JAVA_CLASSES:
        return _Def(_q(prefix, _name(node)), node, _field(node, "body"))
    if t in _JAVA_METHODS:
        return _Def(_q(prefix, _name(node)), node)
    if t == "enum_body_declarations":  # an enum's fields and methods, after its constants
        return _Scope(prefix, tuple(node.named_children))
    return None


# Preprocessor blocks (C, C++, C#): looked through.
_C_PREPROC = {"preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef"}
_CS_CLASSES = {
    "class_declaration", "struct_declaration", "interface_declaration", "record_declaration",
    "record_struct_declaration",
}  # fmt: skip
_CS_METHODS = {"method_declaration", "constructor_declaration", "delegate_declaration", "enum_declaration"}
_CS_ACCESSORS = {"property_declaration", "indexer_declaration", "event_declaration"}


def _cs(node, prefix: str, ctx: dict):
    t = node.type
    if t in _CS_CLASSES:
        return _Def(_q(prefix, _name(node)), node, _field(node, "body"))
    if t in _CS_METHODS:
        return _Def(_q(prefix, _name(node)), node)
    if t == "destructor_declaration":
        return _Def(_q(prefix, "~" + _name(node)), node)
    if t in ("operator_declaration", "conversion_operator_declaration"):
        m = re.search(r"\boperator\s*([^\s(]+)", node.text[:300].decode("utf-8", "replace"))
        return _Def(_q(prefix, "operator " + (m.group(1) if m else "")), node)
    if t in _CS_ACCESSORS:  # only those with bodies of their own, not `int X { get; set; }`
        r0, r1 = _rows(node)
        if r1 > r0:
            return _Def(_q(prefix, "this[]" if t == "indexer_declaration" else _name(node)), node)
        return None
    if t == "namespace_declaration":
        body = _field(node, "body")
        return _Scope(_q(prefix, _name(node)), tuple(body.named_children)) if body is not None else None
    if t == "file_scoped_namespace_declaration":
        return _Scope(_q(prefix, _name(node)), (), following=True)
    if t in _C_PREPROC:  # #if ... #endif around usings, namespaces, members
        return _Scope(prefix, tuple(node.named_children))
    return None


_C_RECORDS = {"struct_specifier", "union_specifier", "class_specifier"}
_C_NAMES = {
    "identifier", "field_identifier", "qualified_identifier", "destructor_name", "operator_name",
    "template_function", "type_identifier", "operator_cast",
}  # fmt: skip


def _cpp_name(text: str) -> str:
    """`ns::Box<T, U<V>>::get` -> ns.Box.get: template arguments dropped, scopes joined by dots."""
    out, depth = [], 0
    for i, ch in enumerate(text):
        if depth == 0 and text.startswith("operator", i):  # operator<, operator<<: verbatim
            out.append(text[i:])
            break
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).replace("::", ".").replace(" .", ".")


def _c_name(declarator) -> str:
    d = declarator
    while d is not None:
        if d.type in _C_NAMES:
            name = _cpp_name(_text(d))
            return name.split("(")[0].strip() if d.type == "operator_cast" else name
        inner = (c for c in d.named_children if c.type.endswith("declarator") or c.type in _C_NAMES)
        d = _field(d, "declarator") or next(inner, None)
    return ""


def _c_record(spec, prefix: str, node, name: str = ""):
    """A struct/union/class/enum with a body, as a definition spanning `node`."""
    body = _field(spec, "body")
    if body is None:
        return None
    name = name or _cpp_name(_text(_field(spec, "name")))
    if not name:
        return None
    return _Def(_q(prefix, name), node, body if spec.type in _C_RECORDS else None)


def _c(node, prefix: str, ctx: dict):
    """C and C++."""
    t = node.type
    if t == "function_definition":
        name = _c_name(_field(node, "declarator"))
        return _Def(_q(prefix, name), node) if name else None
    if t in _C_RECORDS or t == "enum_specifier":
        return _c_record(node, prefix, node)
    if t == "type_definition":  # typedef struct {...} name;
        spec = _field(node, "type")
        if spec is not None and (spec.type in _C_RECORDS or spec.type == "enum_specifier"):
            return _c_record(spec, prefix, node, _c_name(_field(node, "declarator")))
        return None
    if t == "field_declaration":  # a nested struct/enum in a class body
        spec = _field(node, "type")
        record = spec is not None and (spec.type in _C_RECORDS or spec.type == "enum_specifier")
        if record and _field(node, "declarator") is None:
            return _c_record(spec, prefix, node)
        return None
    if t == "template_declaration":
        for c in node.named_children:
            d = _c(c, prefix, ctx)
            if isinstance(d, _Def):
                return replace(d, node=node)
        return None
    if t == "namespace_definition":
        body = _field(node, "body")
        name = _cpp_name(_text(_field(node, "name")))
        return _Scope(_q(prefix, name), tuple(body.named_children)) if body is not None else None
    if t == "linkage_specification":  # extern "C" { ... }
        body = _field(node, "body")
        if body is None:
            return None
        if body.type == "declaration_list":
            return _Scope(prefix, tuple(body.named_children))
        d = _c(body, prefix, ctx)
        return replace(d, node=node) if isinstance(d, _Def) else None
    if t in _C_PREPROC:
        return _Scope(prefix, tuple(node.named_children))
    return None


def _bash(node, prefix: str, ctx: dict):
    if node.type == "function_definition":
        return _Def(_name(node), node)
    if node.type == "compound_statement" and node.parent is not None and node.parent.type == "program":
        return _Scope(prefix, tuple(node.named_children))  # { ...whole script... } so it runs only once complete
    return None


_DEFINE = {
    "python": _py, "javascript": _js, "typescript": _js, "tsx": _js, "go": _go, "rust": _rust,
    "java": _java, "csharp": _cs, "c": _c, "cpp": _c, "bash": _bash,
}  # fmt: skip


def _collect(children, lang: str, prefix: str, ctx: dict) -> list[_Def]:
    """The definitions among these nodes, looking through namespaces and preprocessor blocks."""
    define = _DEFINE[lang]
    out: list[_Def] = []
    for node in children:
        d = define(node, prefix, ctx)
        if d is None:
            continue
        if isinstance(d, _Scope):
            if d.following:
                prefix = d.prefix
            else:
                out += _collect(d.children, lang, d.prefix, ctx)
        else:
            out.append(d)
    return out


def _with_leading_comments(node, start: int) -> int:
    """Move a definition's first line up over the comments (docs, JSDoc, `///`) and attributes that
    sit right above it."""
    prev = node.prev_named_sibling
    while prev is not None and (prev.type in _COMMENTS or prev.type in _ATTRIBUTES):
        p0, p1 = _rows(prev)
        if p1 != start - 1:
            break
        if prev.type in _COMMENTS:
            head = prev.text[:3]
            if head.startswith(b"#!") or head in (b"//!", b"/*!"):  # a shebang, a Rust inner doc
                break
            # A trailing comment on the previous statement's line is not about this definition.
            before = prev.prev_sibling
            if before is not None and _rows(before)[1] == p0:
                break
        start = p0
        prev = prev.prev_named_sibling
    return start


def _span(d: _Def) -> list[int]:
    a, b = _rows(d.node)
    return list(range(_with_leading_comments(d.node, a), b + 1))


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


def _parse_tree(lang: str, text: str):
    data = text.encode("utf-8")
    tree = _parser(lang).parse(data)
    if lang == "c" and tree.root_node.has_error:  # a C++ header named .h
        alt = _parser("cpp").parse(data)
        if not alt.root_node.has_error:
            return "cpp", alt
    return lang, tree


def parse_code(path: Path, rel: str, text: str, max_chars: int, warnings: list[str] | None) -> list[Document]:
    """One document per top-level function and class (per member when a class is too big), plus
    one for the module-level lines; languages without a parser get marked line windows."""
    lines = _split_lines(text)
    em = _Emitter(rel, lines, max_chars)
    lang = language_of(path, text)
    if lang is None:
        em.emit(list(range(1, len(lines) + 1)), "", {"fallback": "line-windows"}, max_lines=FALLBACK_LINES)
        return em.docs

    lang, tree = _parse_tree(lang, text)
    root = tree.root_node
    if root.has_error and warnings is not None:
        warnings.append(f"{rel}: syntax errors; definitions were extracted around them")

    ctx: dict = {}
    if lang == "go":
        clause = next((c for c in root.named_children if c.type == "package_clause"), None)
        if clause is not None and clause.named_children:
            ctx["package"] = _text(clause.named_children[0])

    offsets = [0]  # offsets[r] - offsets[a - 1]: characters of lines a..r, newlines included
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    module_rows = set(range(1, len(lines) + 1))
    defs = []
    for d in _collect(root.named_children, lang, "", ctx):
        rows = _span(d)
        module_rows.difference_update(rows)
        defs.append((d, rows))
    em.emit(sorted(module_rows), "<module>")

    def emit_def(d: _Def, rows: list[int]) -> None:
        if rows and rows[-1] - rows[0] + 1 == len(rows):
            size = offsets[rows[-1]] - offsets[rows[0] - 1] - 1
        else:
            size = sum(len(lines[r - 1]) + 1 for r in rows) - 1
        members = []
        if d.body is not None and size > max_chars:
            members = _collect(d.body.named_children, lang, d.qual or d.symbol, ctx)
        if not members:
            em.emit(rows, d.symbol)
            return
        # Too big a class: its own lines (header, docstring, fields) and then each member.
        own = set(rows)
        spans = []
        for m in members:
            mrows = [r for r in _span(m) if r in own]
            own.difference_update(mrows)
            spans.append((m, mrows))
        em.emit(sorted(own), d.symbol)
        for m, mrows in spans:
            emit_def(m, mrows)

    for d, rows in defs:
        emit_def(d, rows)
    return em.docs
