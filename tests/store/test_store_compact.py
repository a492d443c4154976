"""Store.compact rewriting segments without tombstoned chunks, Store.forget, reserved document
ids, and the writers' lock with a wait."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from sqlalchemy import select

from msa_agent.errors import StoreLocked
from msa_agent.store import NewDocument, SourceUpdate, Store
from msa_agent.store.schema import DocumentRow, SegmentRow


def _slices(store: Store) -> dict[int, tuple]:
    """Each live document's K̄, V̄ and routing-key slices, by id."""
    out = {}
    for d in store.live_documents(None):
        seg = store.segment(d.segment_id)
        a, b = d.chunk_start, d.chunk_start + d.n_chunks
        out[d.id] = tuple(np.array(x[:, a:b]) for x in (seg.k, seg.v, seg.routing_keys()))
    return out


def _same_slices(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(all(np.array_equal(x, y) for x, y in zip(a[i], b[i])) for i in a)


def _seg_rows(store: Store) -> dict[str, SegmentRow]:
    with store.session() as s:
        return {r.id: r for r in s.scalars(select(SegmentRow))}


def test_compact_rewrites_a_segment_that_holds_dead_chunks(store, fill):
    fill(store, {"a.txt": [("A1", "one"), ("A2", "two")], "b.txt": [("B", "three")], "c.txt": [("C", "four")]})
    fill(store, {"b.txt": [("B", "tres")]}, seed=1)  # b's old chunks die inside the first segment
    store.remove_source("default", "/src/c.txt")
    before = _slices(store)
    [first] = [r for r in _seg_rows(store).values() if r.n_docs == 4]
    bytes_before = sum(f.stat().st_size for f in store.segments_dir.rglob("*") if f.is_file())

    res = store.compact()
    assert (res["documents"], res["segments"], res["rewritten"], res["directories"]) == (2, 1, 1, 0)
    assert res["bytes_before"] == bytes_before and res["bytes_after"] < bytes_before
    assert store.verify() == []
    assert _same_slices(_slices(store), before)  # the same tensors, at their new place
    rows = _seg_rows(store)
    assert first.id not in rows and not (store.segments_dir / first.id).exists()
    assert sorted(p.name for p in store.segments_dir.iterdir()) == sorted(rows)
    # Every segment is fully used now: its chunks are exactly its live documents' chunks.
    live = store.live_documents(None)
    for sid, row in rows.items():
        mine = sorted((d.chunk_start, d.n_chunks) for d in live if d.segment_id == sid)
        assert sum(n for _, n in mine) == row.n_chunks == store.segment(sid).chunks.shape[0]
        assert [a for a, _ in mine] == [0, *np.cumsum([n for _, n in mine])[:-1].tolist()]
    assert [d.text for d in live] == ["one", "two", "tres"]
    st = store.status()
    assert (st["documents"], st["tombstoned"], st["segments"]) == (3, 0, 2)
    assert store.lexical_search(None, "one", 5)[0][0] == live[0].id

    again = store.compact()  # nothing left to do
    assert (again["documents"], again["segments"], again["rewritten"], again["directories"]) == (0, 0, 0, 0)


def test_compact_merges_small_segments_up_to_a_bound(store, fill):
    for seed in range(4):
        fill(store, {f"f{seed}a.txt": [("A", f"doc {seed} a")], f"f{seed}b.txt": [("B", f"doc {seed} b")]}, seed=seed)
        store.remove_source("default", f"/src/f{seed}b.txt")  # half of every segment dies
    before = _slices(store)
    res = store.compact(max_chunks=4)  # 2 chunks per document: at most 2 documents per new segment
    assert (res["documents"], res["segments"], res["rewritten"]) == (4, 4, 2)
    assert store.verify() == [] and _same_slices(_slices(store), before)
    assert sorted(r.n_chunks for r in _seg_rows(store).values()) == [4, 4]


def test_a_failed_compaction_leaves_the_store_as_it_was(store, fill, monkeypatch):
    fill(store, {"a.txt": [("A", "one")], "b.txt": [("B", "two")]})
    fill(store, {"b.txt": [("B", "dos")]}, seed=1)
    before, rows_before = _slices(store), set(_seg_rows(store))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:  # the transaction that moves the rows fails
        m.setattr("msa_agent.store.store.update", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            store.compact()
    # Rows untouched; the new segment, written before the transaction, is an orphan directory.
    assert set(_seg_rows(store)) == rows_before and _same_slices(_slices(store), before)
    problems = store.verify()
    assert len(problems) == 1 and "has no row" in problems[0]
    res = store.compact()
    assert (res["rewritten"], res["directories"]) == (1, 1)
    assert store.verify() == [] and _same_slices(_slices(store), before)


def test_a_damaged_segment_is_not_copied(store, fill):
    fill(store, {"a.txt": [("A", "one")], "b.txt": [("B", "two")]})
    fill(store, {"b.txt": [("B", "dos")]}, seed=1)
    [old] = [r for r in _seg_rows(store).values() if r.n_docs == 2]
    f = store.segments_dir / old.id / "v.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    res = store.compact()
    assert res["damaged"] == [old.id] and res["rewritten"] == 0
    assert (store.segments_dir / old.id).is_dir() and old.id in _seg_rows(store)
    assert len(store.verify()) == 1  # still reported


def test_forget_a_file_a_directory_and_one_collection(store, fill, tmp_path):
    fill(store, {"a/x.txt": [("X", "ex")], "a/y.txt": [("Y", "why")], "ab.txt": [("AB", "not under a/")],
                 "b.txt": [("B", "bee")]}, root=str(tmp_path))
    fill(store, {"a/x.txt": [("X", "other collection")]}, root=str(tmp_path), collection="other", seed=1)
    assert store.forget(tmp_path / "a" / "x.txt", "default") == {"sources": 1, "documents": 1}
    assert {d.text for d in store.live_documents("other")} == {"other collection"}
    assert store.forget(tmp_path / "a") == {"sources": 2, "documents": 2}  # a/ in every collection, not ab.txt
    assert {d.text for d in store.live_documents(None)} == {"not under a/", "bee"}
    assert store.lexical_search(None, "why", 5) == []
    assert store.forget(tmp_path / "a") == {"sources": 0, "documents": 0}
    assert sorted(store.sources("default")) == [str(tmp_path / "ab.txt"), str(tmp_path / "b.txt")]
    # Through a symlink to the root: found by its resolved path.
    link = tmp_path.parent / f"{tmp_path.name}-link"
    link.symlink_to(tmp_path)
    assert store.forget(link / "b.txt") == {"sources": 1, "documents": 1}
    # Names with LIKE wildcards are matched literally.
    assert store.forget(str(tmp_path / "a") + "%") == {"sources": 0, "documents": 0}
    assert store.forget(tmp_path / "_b.txt") == {"sources": 0, "documents": 0}


def test_reserved_document_ids_are_never_handed_out_again(store, fill):
    first = store.reserve_document_ids(3)
    assert list(first) == [1, 2, 3]
    [i] = fill(store, {"a.txt": [("A", "one")]})
    assert i > 3
    nxt = store.reserve_document_ids(2)
    assert nxt.start > i
    # A document stored with a reserved id keeps it.
    k = np.zeros((2, 2, 2, 8), np.float16)
    from msa_agent.store import write_segment

    seg = write_segment(store.segments_dir, store.new_segment_id(), k, k, None, np.zeros(2, np.int32))
    u = SourceUpdate(path="/src/r.txt", root="/src", rel_path="r.txt", kind="text", content_hash="h", size=1,
                     mtime_ns=1)
    u.documents.append(NewDocument(path="r.txt", kind="text", anchor="x", anchor_data={}, title="", text="reserved",
                                   content_hash="c", n_tokens=3, chunk_start=0, n_chunks=2, id=nxt.start))
    assert store.commit("default", seg, [u]) == [nxt.start]
    [later] = fill(store, {"c.txt": [("C", "three")]}, seed=2)
    assert later > nxt.stop - 1


def test_reused_documents_keep_their_rows(store, fill):
    [a1, a2] = fill(store, {"a.txt": [("A1", "one"), ("A2", "two")]})
    with store.session() as s:
        row = s.get(DocumentRow, a2)
        seg, start = row.segment_id, row.chunk_start
    from msa_agent.store import ReusedDocument

    u = SourceUpdate(path="/src/a.txt", root="/src", rel_path="a.txt", kind="text", content_hash="h2", size=2,
                     mtime_ns=2)
    u.reused.append(ReusedDocument(id=a2, path="a.txt", kind="text", anchor="part 9", anchor_data={"part": 9},
                                   title="A2", text="two", content_hash="c"))
    assert store.commit("default", None, [u]) == []
    [live] = store.live_documents(None)
    assert (live.id, live.anchor, json.loads(live.anchor_json), live.segment_id, live.chunk_start) == (
        a2, "part 9", {"part": 9}, seg, start)
    assert store.sources("default")["/src/a.txt"].n_docs == 1
    with store.session() as s:
        assert s.get(DocumentRow, a1).tombstone
    bad = SourceUpdate(path="/src/a.txt", root="/src", rel_path="a.txt", kind="text", content_hash="h3", size=2,
                       mtime_ns=2)
    bad.reused.append(ReusedDocument(id=a1, path="a.txt", kind="text", anchor="", anchor_data={}, title="",
                                     text="one", content_hash="c"))
    with pytest.raises(ValueError, match="not a live document"):
        store.commit("default", None, [bad])
    assert [d.id for d in store.live_documents(None)] == [a2]  # the failed transaction changed nothing


def test_write_lock_waits_for_the_holder(store):
    other = Store.open(store.path)
    held, release = threading.Event(), threading.Event()

    def hold():
        with other.write_lock():
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(10)
        t0 = time.monotonic()
        with pytest.raises(StoreLocked) as e:
            with store.write_lock(wait=0.3):
                pass
        assert time.monotonic() - t0 >= 0.3
        msg = str(e.value)
        assert "another msa process is writing" in msg and "--wait" in msg and "\n" not in msg
        threading.Timer(0.3, release.set).start()
        with store.write_lock(wait=10):  # gets it once the holder lets go
            assert release.is_set()
    finally:
        release.set()
        t.join(10)
        other.close()
