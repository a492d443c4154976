"""Tensor segments: immutable, memory-mappable .npy files with sha256 checksums.

A segment holds, for every router layer, the pooled content keys K̄, values V̄ and (with a trained
router) routing keys K̄ᴿ of its chunks, stacked as (layers, N, Hk, D) float16, plus `chunks.npy`,
the index (0..n_docs-1) of the segment document that owns each chunk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msa_agent.errors import StoreCorrupt

FILES = ("k.npy", "v.npy", "rk.npy", "chunks.npy")

_FAULT_SEEN: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook for crash-safety trials; a no-op unless MSA_FAULT is set.

    MSA_FAULT=NAME:N makes the process SIGKILL itself the N-th time (1-based) it reaches the point
    NAME in this process: parse, encode, segment_file, segment_written, before_commit,
    after_commit, compact_segment, compact_commit, compact_cleanup (see tests/reliability).
    """
    spec = os.environ.get("MSA_FAULT")
    if not spec:
        return
    want, _, n = spec.partition(":")
    if want != name:
        return
    _FAULT_SEEN[name] = _FAULT_SEEN.get(name, 0) + 1
    if _FAULT_SEEN[name] >= int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_npy(path: Path, arr: np.ndarray) -> str:
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return sha256_file(path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class SegmentFiles:
    """What a sealed segment's directory holds, after writing."""

    id: str
    n_chunks: int
    n_bytes: int
    checksums: dict[str, str]


def _write_files(tmp: Path, seg_id: str, k: np.ndarray, v: np.ndarray, rk: np.ndarray | None,
                 chunks: np.ndarray) -> dict[str, str]:
    sums = {}
    for name, arr, dtype in (("k.npy", k, np.float16), ("v.npy", v, np.float16), ("chunks.npy", chunks, np.int32),
                             ("rk.npy", rk, np.float16)):
        if arr is not None:
            sums[name] = _write_npy(tmp / name, np.ascontiguousarray(arr, dtype=dtype))
            fault_point("segment_file")
    meta = {"id": seg_id, "n_chunks": int(chunks.shape[0]), "checksums": sums}
    (tmp / "meta.json").write_text(json.dumps(meta))
    with open(tmp / "meta.json", "rb+") as f:
        os.fsync(f.fileno())
    for f in tmp.iterdir():  # the memory holds documents' content: the owner's alone
        f.chmod(0o600)
    _fsync_dir(tmp)
    return sums


def write_segment(
    segments_dir: Path,
    seg_id: str,
    k: np.ndarray,
    v: np.ndarray,
    rk: np.ndarray | None,
    chunks: np.ndarray,
) -> SegmentFiles:
    """Write and fsync a segment's files into a temporary directory, then rename it into place.

    k, v, rk: (layers, N, Hk, D) float16; chunks: (N,) int32.
    """
    if k.shape != v.shape or k.shape[1] != chunks.shape[0]:
        raise ValueError(f"segment shapes disagree: k {k.shape}, v {v.shape}, chunks {chunks.shape}")
    segments_dir.mkdir(parents=True, exist_ok=True)
    tmp = segments_dir / f".tmp-{seg_id}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(mode=0o700)
    try:
        sums = _write_files(tmp, seg_id, k, v, rk, chunks)
    except OSError as e:
        # Nothing half-written stays behind (a `.tmp-*` left by a full disk failed `verify` until
        # `compact`), and the space it took is free again for the run's own bookkeeping.
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno is None and "requested and" in str(e):  # numpy's short write: a full disk says so
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(segments_dir)) from e
        raise
    final = segments_dir / seg_id
    os.replace(tmp, final)
    _fsync_dir(segments_dir)
    n_bytes = sum((final / name).stat().st_size for name in sums)
    return SegmentFiles(seg_id, int(chunks.shape[0]), n_bytes, sums)


class Segment:
    """A sealed segment opened read-only, arrays memory-mapped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.k = np.load(path / "k.npy", mmap_mode="r", allow_pickle=False)
            self.v = np.load(path / "v.npy", mmap_mode="r", allow_pickle=False)
            self.chunks = np.load(path / "chunks.npy", mmap_mode="r", allow_pickle=False)
            rk = path / "rk.npy"
            self.rk = np.load(rk, mmap_mode="r", allow_pickle=False) if rk.is_file() else None
        except (OSError, ValueError) as e:
            raise StoreCorrupt(f"segment {path.name}: cannot be read ({e})") from e
        if self.k.shape != self.v.shape or self.k.shape[1] != self.chunks.shape[0]:
            raise StoreCorrupt(f"segment {path.name}: array shapes disagree")

    def routing_keys(self) -> np.ndarray:
        """(layers, N, Hk, D): the trained router's keys, else the content keys."""
        return self.rk if self.rk is not None else self.k


def verify_segment(path: Path, checksums: dict[str, str]) -> list[str]:
    """Problems found in a segment's files (empty when whole)."""
    problems = []
    for name, want in checksums.items():
        f = path / name
        if not f.is_file():
            problems.append(f"segment {path.name}: {name} missing")
        elif sha256_file(f) != want:
            problems.append(f"segment {path.name}: {name} checksum mismatch (truncated or corrupted)")
    return problems
