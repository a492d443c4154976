"""Make `msa_agent.*` importable from a plain checkout (the device machine has no editable
install): when it is not, a temporary tree of symlinks lays the repository out as the installed
package (pyproject's package-dir: model/ -> msa_agent.model, kernels/ -> msa_agent.kernels, ...)."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TOP = {"model": "model", "kernels": "kernels", "ingest": "ingest", "cli": "cli"}

if importlib.util.find_spec("msa_agent") is None or importlib.util.find_spec("msa_agent.model") is None:
    for name in [m for m in sys.modules if m == "msa_agent" or m.startswith("msa_agent.")]:
        del sys.modules[name]
    tree = Path(tempfile.mkdtemp(prefix="msa-pkg-")) / "msa_agent"
    tree.mkdir()
    for p in (ROOT / "msa_agent").iterdir():
        if p.name != "__pycache__":
            (tree / p.name).symlink_to(p)
    for sub, src in _TOP.items():
        if (ROOT / src).is_dir() and not (tree / sub).exists():
            (tree / sub).symlink_to(ROOT / src)
    sys.path.insert(0, str(tree.parent))
