"""Sources -> Document records: text plus a citation anchor. No model, no store: stdlib and parsers.

    from msa_agent.ingest import walk, parse_file
    for path in walk(root):
        docs = parse_file(path, root)   # raises SourceError("path: reason")
"""

from .base import Document, SourceError
from .sources import detect_kind, parse_file, walk

__all__ = ["Document", "SourceError", "detect_kind", "parse_file", "walk"]
