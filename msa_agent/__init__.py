"""msa: an enterprise memory agent on Memory Sparse Attention.

    from msa_agent import Memory

    mem = Memory.open("path/to/store")
    print(mem.ask("What does Blue Harbor Robotics pay per quarter?").answer)

The names below load on first use, so `import msa_agent` (and every `msa` command) stays cheap.
"""

from __future__ import annotations

__all__ = ["Answer", "Memory", "RemoteMemory", "Routing"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'msa_agent' has no attribute {name!r}")
