"""Sources -> Document records: text plus a citation anchor. No model, no store: stdlib and parsers.

    from msa_agent.ingest import walk, parse_file
    for path in walk(root):
        docs = parse_file(path, root)   # raises SourceError("path: reason")
"""

from .base import Document, SourceError
from .sources import detect_kind, parse_file, walk

# Bumped when a file's documents change for the same bytes (2: log times keep their unknown zone
# and year, more log formats read by content): stored files are re-parsed and re-keyed.
PARSER_VERSION = "2"
__all__ = ["Document", "SourceError", "detect_kind", "parse_file", "walk"]
