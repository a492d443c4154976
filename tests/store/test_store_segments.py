"""Tensor segments: written whole or not at all, checked file by file; Store.verify and compact
find and clean what an interrupted ingest or a damaged disk leaves behind."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from msa_agent.errors import StoreCorrupt
from msa_agent.store import Segment, write_segment
from msa_agent.store.segments import verify_segment


def _arrays(n: int = 6, rk: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((2, n, 3, 4)).astype(np.float16)  # (layers, N, Hk, D)
    v = rng.standard_normal((2, n, 3, 4)).astype(np.float16)
    r = rng.standard_normal((2, n, 3, 4)).astype(np.float16) if rk else None
    chunks = np.array([0, 0, 1, 2, 2, 2][:n], dtype=np.int32)
    return k, v, r, chunks


def _flip_byte(path, offset: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_write_segment_then_read_and_verify(tmp_path):
    k, v, rk, chunks = _arrays()
    files = write_segment(tmp_path, "seg1", k, v, rk, chunks)
    d = tmp_path / "seg1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg1"]  # no temporary directory left
    assert sorted(p.name for p in d.iterdir()) == ["chunks.npy", "k.npy", "meta.json", "rk.npy", "v.npy"]
    assert files.id == "seg1" and files.n_chunks == 6
    assert files.checksums == {n: hashlib.sha256((d / n).read_bytes()).hexdigest()
                               for n in ("k.npy", "v.npy", "rk.npy", "chunks.npy")}
    assert files.n_bytes == sum((d / n).stat().st_size for n in files.checksums)
    assert json.loads((d / "meta.json").read_text()) == {"id": "seg1", "n_chunks": 6, "checksums": files.checksums}
    assert verify_segment(d, files.checksums) == []

    seg = Segment(d)
    assert isinstance(seg.k, np.memmap)
    np.testing.assert_array_equal(seg.k, k)
    np.testing.assert_array_equal(seg.v, v)
    np.testing.assert_array_equal(seg.chunks, chunks)
    np.testing.assert_array_equal(seg.routing_keys(), rk)  # a trained router's keys when stored


def test_segment_without_router_keys_routes_on_content_keys(tmp_path):
    k, v, _, chunks = _arrays(rk=False)
    files = write_segment(tmp_path, "s", k, v, None, chunks)
    assert "rk.npy" not in files.checksums and not (tmp_path / "s" / "rk.npy").exists()
    seg = Segment(tmp_path / "s")
    assert seg.rk is None
    np.testing.assert_array_equal(seg.routing_keys(), k)


def test_rewriting_over_a_leftover_temporary_directory(tmp_path):
    (tmp_path / ".tmp-s").mkdir()
    (tmp_path / ".tmp-s" / "k.npy").write_bytes(b"half written")
    k, v, rk, chunks = _arrays()
    files = write_segment(tmp_path, "s", k, v, rk, chunks)
    assert not (tmp_path / ".tmp-s").exists()
    assert verify_segment(tmp_path / "s", files.checksums) == []


def test_write_segment_refuses_disagreeing_shapes(tmp_path):
    k, v, rk, chunks = _arrays()
    with pytest.raises(ValueError, match="shapes disagree"):
        write_segment(tmp_path, "s", k, v[:, :5], rk, chunks)
    with pytest.raises(ValueError, match="shapes disagree"):
        write_segment(tmp_path, "s", k, v, rk, chunks[:5])
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("name", ["k.npy", "v.npy", "rk.npy", "chunks.npy"])
def test_verify_segment_names_the_damaged_file(tmp_path, damage, name):
    k, v, rk, chunks = _arrays()
    files = write_segment(tmp_path, "seg7", k, v, rk, chunks)
    f = tmp_path / "seg7" / name
    if damage == "flip":
        _flip_byte(f)
    elif damage == "truncate":
        f.write_bytes(f.read_bytes()[:-10])
    else:
        f.unlink()
    problems = verify_segment(tmp_path / "seg7", files.checksums)
    assert len(problems) == 1
    assert problems[0].startswith("segment seg7: ") and name in problems[0]
    assert ("missing" if damage == "delete" else "checksum mismatch") in problems[0]


def test_opening_a_truncated_segment_is_store_corrupt(tmp_path):
    k, v, rk, chunks = _arrays()
    write_segment(tmp_path, "s", k, v, rk, chunks)
    f = tmp_path / "s" / "k.npy"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(StoreCorrupt, match="segment s"):
        Segment(tmp_path / "s")


def test_opening_a_segment_with_disagreeing_arrays_is_store_corrupt(tmp_path):
    k, v, rk, chunks = _arrays()
    write_segment(tmp_path, "s", k, v, rk, chunks)
    np.save(tmp_path / "s" / "chunks.npy", chunks[:4])
    with pytest.raises(StoreCorrupt, match="shapes disagree"):
        Segment(tmp_path / "s")


# ---- the store's view -----------------------------------------------------------------------


def _two_segments(store, fill):
    a = fill(store, {"a.txt": [("A", "alpha text"), ("A2", "alpha more")]}, seed=1)
    b = fill(store, {"b.txt": [("B", "beta text")]}, seed=2)
    docs = {d.id: d for d in store.live_documents(None)}
    return docs[a[0]].segment_id, docs[b[0]].segment_id


def test_verify_is_empty_on_a_whole_store(store, fill):
    _two_segments(store, fill)
    assert store.verify() == []


def test_verify_reports_damage_by_segment(store, fill):
    seg_a, seg_b = _two_segments(store, fill)
    _flip_byte(store.segments_dir / seg_b / "v.npy")
    f = store.segments_dir / seg_a / "k.npy"
    f.write_bytes(f.read_bytes()[:-1])
    problems = store.verify()
    assert len(problems) == 2
    assert any(p.startswith(f"segment {seg_a}: k.npy") for p in problems)
    assert any(p.startswith(f"segment {seg_b}: v.npy") for p in problems)


def test_verify_reports_a_row_whose_files_are_gone(store, fill):
    seg_a, _ = _two_segments(store, fill)
    shutil.rmtree(store.segments_dir / seg_a)
    problems = store.verify()
    assert problems and all(seg_a in p for p in problems)
    assert {p.split(": ")[1].split()[0] for p in problems} == {"k.npy", "v.npy", "chunks.npy"}


def test_orphan_directories_are_reported_and_compacted(store, fill):
    seg_a, seg_b = _two_segments(store, fill)
    # An ingest killed after fsyncing its segment, before its rows committed; and one killed
    # while still writing.
    k, v, rk, chunks = _arrays()
    write_segment(store.segments_dir, "orphan0000000001", k, v, rk, chunks)
    (store.segments_dir / ".tmp-orphan0000000002").mkdir()
    problems = store.verify()
    assert len(problems) == 2
    assert any("orphan0000000001" in p and "no row" in p for p in problems)
    assert any(".tmp-orphan0000000002" in p and "no row" in p for p in problems)

    res = store.compact()
    assert {k: res[k] for k in ("documents", "segments", "rewritten", "directories", "damaged")} == {
        "documents": 0, "segments": 0, "rewritten": 0, "directories": 2, "damaged": []}
    assert store.verify() == []
    assert sorted(p.name for p in store.segments_dir.iterdir()) == sorted([seg_a, seg_b])
    assert len(store.live_documents(None)) == 3


def test_compact_drops_tombstones_and_segments_no_live_document_uses(store, fill):
    seg_a, seg_b = _two_segments(store, fill)
    fill(store, {"a.txt": [("A", "alpha rewritten")]}, seed=3)  # replaces a.txt: segment a is now dead
    assert store.status()["tombstoned"] == 2
    assert store.remove_source("default", "/src/b.txt") == 1  # segment b dead too
    res = store.compact()
    assert {k: res[k] for k in ("documents", "segments", "rewritten", "directories")} == {
        "documents": 3, "segments": 2, "rewritten": 0, "directories": 0}
    assert res["bytes_after"] < res["bytes_before"]
    [live] = store.live_documents(None)
    assert live.text == "alpha rewritten"
    assert [p.name for p in store.segments_dir.iterdir()] == [live.segment_id]
    st = store.status()
    assert (st["documents"], st["tombstoned"], st["segments"]) == (1, 0, 1)
    assert store.verify() == []


def test_segment_verification_is_stamped_and_a_changed_file_is_hashed_again(tmp_path):
    """Opening a store hashes each segment once; later opens trust the stamp only while every
    file is untouched, so a corrupted file is caught by the next open."""
    import json as _json

    from msa_agent.store.store import VERIFIED_STAMP, Store as _Store

    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "a.npy").write_bytes(b"x" * 64)
    from msa_agent.store.segments import sha256_file

    sums = {"a.npy": sha256_file(seg / "a.npy")}
    assert _Store._verify_stamped(seg, sums) == []
    stamp = _json.loads((seg / VERIFIED_STAMP).read_text())
    assert stamp["checksums"] == sums
    assert _Store._verify_stamped(seg, sums) == []  # served from the stamp
    with open(seg / "a.npy", "r+b") as f:  # same size, different bytes
        f.seek(10)
        f.write(b"y")
    assert "checksum mismatch" in _Store._verify_stamped(seg, sums)[0]
    (seg / "a.npy").unlink()
    assert "missing" in _Store._verify_stamped(seg, sums)[0]
