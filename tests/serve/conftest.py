"""`msa serve` over the tiny model and the small corpus the application tests use, split into two
collections: `legal` (the contracts) and `ops` (the code and the sensor log)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from msa_agent.engine import Engine
from msa_agent.pipeline import ingest_dir
from msa_agent.serve import create_app
from msa_agent.store import Store
from msa_agent.store.tokens import create_token

CORPUS = Path(__file__).resolve().parents[1] / "app" / "corpus"


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    with pytest.MonkeyPatch.context() as mp:  # loading writes a digest memo into MSA_HOME
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("engine-home")))
        return Engine.load(str(tiny_model_dir), dtype="float32")


def build_store(engine: Engine, where: Path) -> Store:
    legal, ops = where / "legal", where / "ops"
    shutil.copytree(CORPUS / "contracts", legal / "contracts")
    shutil.copytree(CORPUS / "code", ops / "code")
    shutil.copytree(CORPUS / "logs", ops / "logs")
    st = Store.open(where / "store", create=True)
    ingest_dir(legal, st, engine, collection="legal")
    ingest_dir(ops, st, engine, collection="ops")
    return st


@pytest.fixture
def make_store(engine: Engine, tmp_path: Path):
    """`make_store()`: a fresh two-collection store under tmp_path, closed after the test."""
    made: list[Store] = []

    def make() -> Store:
        made.append(build_store(engine, tmp_path))
        return made[-1]

    yield make
    for st in made:
        st.close()


@pytest.fixture(scope="module")
def two_collections(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    """A store with `legal` and `ops`, read-only for the tests that share it."""
    st = build_store(engine, tmp_path_factory.mktemp("served"))
    yield st
    st.close()


@pytest.fixture(scope="module")
def tokens(two_collections: Store) -> dict[str, str]:
    """Tokens granting legal, ops, both, and one revoked (legal)."""
    from msa_agent.store.tokens import revoke_token

    out = {name: create_token(two_collections, colls)[1]
           for name, colls in {"legal": ["legal"], "ops": ["ops"], "both": ["legal", "ops"]}.items()}
    info, out["revoked"] = create_token(two_collections, ["legal"])
    revoke_token(two_collections, info["id"])
    return out


@pytest.fixture(scope="module")
def client(engine: Engine, two_collections: Store, tokens: dict[str, str]):
    with TestClient(create_app(engine, two_collections)) as c:
        yield c
