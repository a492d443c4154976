"""The persistent memory store."""

from .schema import FORMAT_VERSION
from .segments import Segment, SegmentFiles, fault_point, write_segment
from .store import NewDocument, ReusedDocument, SourceUpdate, Store

__all__ = [
    "FORMAT_VERSION", "NewDocument", "ReusedDocument", "Segment", "SegmentFiles", "SourceUpdate", "Store",
    "fault_point",
    "write_segment",
]
