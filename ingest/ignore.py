""".gitignore and .msaignore rules, as git applies them, for the directory walk.

Each directory's ``.gitignore`` and then its ``.msaignore`` (same syntax) add rules for the paths
below it; a deeper file's rules win over a shallower one's, and within a directory the last
matching pattern wins, so a ``.msaignore`` can re-include (``!pattern``) what ``.gitignore``
excludes. Pattern syntax (negation, ``dir/``, anchored ``/x``, ``**``, escapes) is git's, through
``pathspec.GitIgnoreSpec``. As in git, a file inside an excluded directory cannot be re-included:
the walk never enters that directory.

Not read: ``.git/info/exclude``, ``core.excludesFile`` and ignore files above the walked root.
"""

from __future__ import annotations

from pathlib import Path

IGNORE_FILES = (".gitignore", ".msaignore")


def _spec(lines: list[str]):
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception:  # one malformed pattern should not void the whole file: keep the good ones
        good = []
        for ln in lines:
            try:
                pathspec.GitIgnoreSpec.from_lines([ln])
            except Exception:
                continue
            good.append(ln)
        return pathspec.GitIgnoreSpec.from_lines(good)


class IgnoreRules:
    """The rules in force in one directory; ``descend`` gives a subdirectory's."""

    __slots__ = ("_specs",)

    def __init__(self, specs: tuple = ()):
        self._specs = specs  # ((base rel path, spec), ...), shallowest first

    def descend(self, directory: Path, rel: str) -> IgnoreRules:
        """The rules for ``directory`` (``rel`` from the root, "" for the root itself)."""
        lines: list[str] = []
        for name in IGNORE_FILES:
            try:
                data = (directory / name).read_bytes()
            except OSError:
                continue
            lines += data.decode("utf-8", "replace").splitlines()
        if not any(ln.strip() and not ln.startswith("#") for ln in lines):
            return self
        return IgnoreRules(self._specs + ((rel, _spec(lines)),))

    def check(self, rel: str, is_dir: bool) -> bool | None:
        """True when a rule excludes ``rel`` (posix, from the root), False when a ``!`` rule
        re-includes it, None when no rule speaks of it."""
        for base, spec in reversed(self._specs):
            sub = rel[len(base) + 1 :] if base else rel
            result = spec.check_file(sub + "/" if is_dir else sub).include
            if result is not None:
                return result
        return None

    def __bool__(self) -> bool:
        return bool(self._specs)
