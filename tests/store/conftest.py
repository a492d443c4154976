"""Stores filled without a model: real segments of random pooled keys, real rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msa_agent.store import NewDocument, SourceUpdate, Store, write_segment

LAYERS, HK, D = 2, 2, 8  # router layers, KV heads, head dim of the fake segments
CHUNKS_PER_DOC = 2


def put(store: Store, files: dict[str, list[tuple[str, str]]], *, collection: str = "default",
        root: str = "/src", seed: int = 0) -> list[int]:
    """Commit one new segment holding `files` ({relative path: [(title, text), ...]}); returns
    the new document ids in order. A path already stored is replaced, as a re-ingest does."""
    n_docs = sum(len(docs) for docs in files.values())
    n = n_docs * CHUNKS_PER_DOC
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((LAYERS, n, HK, D)).astype(np.float16)
    v = rng.standard_normal((LAYERS, n, HK, D)).astype(np.float16)
    chunks = np.repeat(np.arange(n_docs, dtype=np.int32), CHUNKS_PER_DOC)
    seg = write_segment(store.segments_dir, store.new_segment_id(), k, v, None, chunks)
    updates, start = [], 0
    for rel, docs in files.items():
        u = SourceUpdate(path=f"{root}/{rel}", root=root, rel_path=rel, kind="text", content_hash=f"h-{seed}-{rel}",
                         size=1, mtime_ns=1)
        for i, (title, text) in enumerate(docs):
            u.documents.append(NewDocument(
                path=rel, kind="text", anchor=f"part {i + 1}", anchor_data={"part": i + 1}, title=title, text=text,
                content_hash=f"{seed}-{rel}-{i}", n_tokens=7, chunk_start=start, n_chunks=CHUNKS_PER_DOC))
            start += CHUNKS_PER_DOC
        updates.append(u)
    return store.commit(collection, seg, updates)


@pytest.fixture
def store(tmp_path: Path):
    st = Store.open(tmp_path / "store", create=True)
    yield st
    st.close()


@pytest.fixture(scope="session")
def fill():
    """`put`, as a fixture (test modules cannot import a conftest by name)."""
    return put
