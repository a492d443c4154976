"""The persistent memory store."""

from .schema import FORMAT_VERSION
from .segments import Segment, SegmentFiles, write_segment
from .store import NewDocument, SourceUpdate, Store

__all__ = ["FORMAT_VERSION", "NewDocument", "Segment", "SegmentFiles", "SourceUpdate", "Store", "write_segment"]
