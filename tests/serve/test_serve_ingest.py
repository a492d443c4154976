"""POST /v1/ingest: only under the server's allowed roots (symlinks resolved), a background job
reported by GET /v1/jobs/{id}, and the resident index picking up what the job commits."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from msa_agent.serve import create_app
from msa_agent.store.tokens import create_token


NOTE = "# Zorblat valve\n\nThe Zorblat valve on line 9 is serviced every 45 days by the Quillon crew.\n"


def wait_job(c: TestClient, job_id: int, headers: dict | None = None, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/v1/jobs/{job_id}", headers=headers or {}).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def test_ingest_is_confined_to_the_allowed_roots(engine, tmp_path, make_store):
    st = make_store()
    allowed = tmp_path / "incoming"
    (allowed / "new").mkdir(parents=True)
    (allowed / "escape").symlink_to(tmp_path / "legal")  # inside the root by name, outside in fact
    with TestClient(create_app(engine, st, auth=False, allow_roots=[allowed])) as c:
        for path in (str(tmp_path / "legal"), str(allowed / "escape"), str(allowed / ".." / "legal"), "/etc"):
            r = c.post("/v1/ingest", json={"path": path})
            assert r.status_code == 403, path
            assert "not under an allowed root" in r.json()["error"]["message"]
        assert c.post("/v1/ingest", json={"path": "incoming/new"}).status_code == 400  # relative
        assert c.post("/v1/ingest", json={"path": str(allowed / "missing")}).status_code == 400
    with TestClient(create_app(engine, st, auth=False)) as c:  # no --allow-root: nothing may be ingested
        r = c.post("/v1/ingest", json={"path": str(allowed / "new")})
        assert r.status_code == 403 and "--allow-root" in r.json()["error"]["message"]


def test_an_ingest_job_commits_and_questions_then_find_the_new_document(engine, tmp_path, make_store):
    st = make_store()
    allowed = tmp_path / "incoming"
    (allowed / "notes").mkdir(parents=True)
    (allowed / "notes" / "zorblat.md").write_text(NOTE)
    (allowed / "notes" / "leak.txt").symlink_to(tmp_path / "legal" / "contracts" / "supply.txt")  # not followed
    _, token = create_token(st, ["ops"])
    h = {"Authorization": f"Bearer {token}"}
    q = {"question": "How often is the Zorblat valve serviced?", "top_k": 3}
    with TestClient(create_app(engine, st, allow_roots=[allowed])) as c:
        before = c.post("/v1/route", json=q, headers=h).json()
        assert all("zorblat" not in d["path"] for d in before["docs"])
        r = c.post("/v1/ingest", json={"path": str(allowed / "notes")}, headers=h)  # the token's only collection
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["collection"] == "ops" and job["status"] in ("queued", "running", "ok")
        # Questions are answered while the job runs (or after it, on a fast machine).
        assert c.post("/v1/route", json=q, headers=h).status_code == 200
        done = wait_job(c, job["id"], h)
        assert done["status"] == "ok", done
        assert done["report"]["added"] == 1 and done["progress"]["files"] == 1
        after = c.post("/v1/route", json=q, headers=h).json()
        assert after["docs"][0]["path"] == "zorblat.md"
        assert after["memory"]["documents"] == before["memory"]["documents"] + 1
        ans = c.post("/v1/ask", json=q, headers=h).json()
        assert ans["rounds"][0]["routed"][0]["path"] == "zorblat.md"
        # Another token cannot see the job.
        _, other = create_token(st, ["legal"])
        assert c.get(f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {other}"}).status_code == 404
    assert [d.path for d in st.live_documents("ops") if "zorblat" in d.path] == ["zorblat.md"]
    assert not [d for d in st.live_documents("ops") if "leak" in d.path or "Northwind" in d.text]


def test_the_resident_index_is_reused_until_the_store_changes(engine, tmp_path, make_store):
    st = make_store()
    app = create_app(engine, st, auth=False)
    q = {"question": "pump timeout", "collection": "ops"}
    with TestClient(app) as c:
        for _ in range(3):
            assert c.post("/v1/route", json=q).status_code == 200
        resident = app.state.server.memory
        assert resident.builds == 1
        st.forget(tmp_path / "ops" / "code", "ops")  # another writer commits
        r = c.post("/v1/route", json=q).json()
        assert resident.builds == 2 and all(not d["path"].startswith("code/") for d in r["docs"])


def test_questions_are_answered_while_an_ingest_job_runs(engine, tmp_path, make_store, monkeypatch):
    """The job is held between batches (outside the model lock): questions go on meanwhile and see
    the memory as last committed; once it commits, the new document is routed."""
    import threading

    from msa_agent.serve import _LockedEngine

    gate, reached = threading.Event(), threading.Event()
    real = _LockedEngine.encode_batches

    def held(self, *a, **kw):
        reached.set()
        assert gate.wait(30)
        yield from real(self, *a, **kw)

    monkeypatch.setattr(_LockedEngine, "encode_batches", held)
    st = make_store()
    allowed = tmp_path / "incoming"
    (allowed / "notes").mkdir(parents=True)
    (allowed / "notes" / "zorblat.md").write_text(NOTE)
    q = {"question": "How often is the Zorblat valve serviced?", "collection": "ops"}
    with TestClient(create_app(engine, st, auth=False, allow_roots=[allowed])) as c:
        job = c.post("/v1/ingest", json={"path": str(allowed / "notes"), "collection": "ops"}).json()
        assert reached.wait(30)
        for _ in range(2):
            r = c.post("/v1/ask", json=q)
            assert r.status_code == 200
            assert all(d["path"] != "zorblat.md" for d in r.json()["rounds"][0]["routed"])
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
        gate.set()
        assert wait_job(c, job["id"])["status"] == "ok"
        assert c.post("/v1/route", json=q).json()["docs"][0]["path"] == "zorblat.md"
