"""A small corpus (a contract, a Markdown policy, a Python module, a sensor log), the tiny model
loaded once, and stores built from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from msa_agent.engine import Engine
from msa_agent.pipeline import ingest_dir
from msa_agent.store import Store

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A fresh copy of the small corpus, free to edit."""
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    # Session fixtures start before the autouse MSA_HOME one, and loading writes a digest memo
    # into MSA_HOME: keep it away from the real home.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("engine-home")))
        return Engine.load(str(tiny_model_dir), dtype="float32")


@pytest.fixture
def store(tmp_path: Path):
    st = Store.open(tmp_path / "store", create=True)
    yield st
    st.close()


@pytest.fixture(scope="session")
def other_engine(other_tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Same geometry as `engine`, other weights: another fingerprint."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("engine-home")))
        return Engine.load(str(other_tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def built(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    """The small corpus ingested once, for tests that only read the store."""
    root = Path(shutil.copytree(CORPUS, tmp_path_factory.mktemp("built") / "corpus"))
    st = Store.open(root.parent / "store", create=True)
    ingest_dir(root, st, engine)
    yield st
    st.close()
