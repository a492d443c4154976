"""The HTTP API over a resident engine and store: /v1/ask (JSON and server-sent events) equals
in-process ask(), /v1/route, /v1/status, /healthz, and the auth matrix."""

from __future__ import annotations

import json

import pytest

from msa_agent.ask import ask, route

Q_CODE = "What is the default timeout_s of PumpController.emergency_stop?"
Q_LEGAL = "How much does the Buyer pay the Supplier per quarter?"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def comparable(res: dict) -> dict:
    """An ask result without its wall-clock figures."""
    out = {k: v for k, v in res.items() if k != "timing"}
    out["rounds"] = [{k: v for k, v in r.items() if k != "ms"} for r in res["rounds"]]
    out["reading"] = {k: v for k, v in res["reading"].items() if k != "first_token_ms"}
    return out


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", ""), json.loads(fields["data"])))
    return events


def test_ask_json_is_the_in_process_result(client, tokens, two_collections, engine):
    r = client.post("/v1/ask", json={"question": Q_CODE, "collection": "ops", "top_k": 3}, headers=bearer(tokens["ops"]))
    assert r.status_code == 200, r.text
    got = r.json()
    want = ask(two_collections, engine, Q_CODE, collection="ops", top_k=3).as_dict()
    assert comparable(got) == comparable(want)
    assert set(got) == {"answer", "citations", "rounds", "timing", "mode", "reading"}
    routed = [d["path"] for r in got["rounds"] for d in r["routed"]]
    assert routed[0] == "code/pump.py" and all(p.startswith(("code/", "logs/")) for p in routed)
    assert {"route_ms", "generate_ms", "first_token_ms", "total_ms"} <= set(got["timing"])


def test_ask_streams_tokens_then_the_result(client, tokens, two_collections, engine):
    body = {"question": Q_CODE, "collection": "ops", "top_k": 3, "stream": True}
    with client.stream("POST", "/v1/ask", json=body, headers=bearer(tokens["ops"])) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events("".join(r.iter_text()))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1
    assert set(kinds[:-1]) == {"token"}
    result = events[-1][1]
    assert "".join(d["text"] for k, d in events if k == "token") == result["answer"]
    want = ask(two_collections, engine, Q_CODE, collection="ops", top_k=3).as_dict()
    assert comparable(result) == comparable(want)


def test_route_status_healthz(client, tokens, two_collections, engine):
    r = client.post("/v1/route", json={"question": Q_CODE, "collection": "ops", "top_k": 2}, headers=bearer(tokens["ops"]))
    assert r.status_code == 200
    want = route(two_collections, engine, Q_CODE, collection="ops", top_k=2)
    got = r.json()
    assert got["docs"] == want["docs"] and got["docs"][0]["path"] == "code/pump.py"
    assert set(got) == set(want)

    st = client.get("/v1/status", headers=bearer(tokens["both"])).json()
    assert st["documents"] == two_collections.status()["documents"]
    assert st["collections"] == ["legal", "ops"] and "fingerprint" in st and "reader" in st
    only = client.get("/v1/status", headers=bearer(tokens["legal"])).json()
    assert only["collections"] == ["legal"] and {s["collection"] for s in only["sources"]} == {"legal"}

    h = client.get("/healthz")  # no token needed
    assert h.status_code == 200 and h.json()["ok"] is True


def test_bad_requests_are_400(client, tokens):
    h = bearer(tokens["ops"])
    assert client.post("/v1/ask", json={"question": "  "}, headers=h).status_code == 400
    assert client.post("/v1/ask", json={"question": "x", "rounds": 0}, headers=h).status_code == 400
    assert client.post("/v1/ask", json={"question": "x", "mode": "psychic"}, headers=h).status_code == 400
    r = client.post("/v1/ask", content=b"not json", headers=h)
    assert r.status_code == 400 and r.json()["error"]["message"] == "the body is not JSON"


@pytest.mark.parametrize("path,body", [
    ("/v1/ask", {"question": Q_LEGAL}),
    ("/v1/route", {"question": Q_LEGAL}),
    ("/v1/chat/completions", {"model": "x", "messages": [{"role": "user", "content": Q_LEGAL}]}),
    ("/v1/ingest", {"path": "/tmp"}),
    ("/v1/status", None),
    ("/v1/models", None),
    ("/v1/jobs/1", None),
    ("/v1/jobs", None),
    ("/v1/documents/1", None),
])
def test_every_endpoint_needs_a_valid_token(client, tokens, path, body):
    def call(headers):
        return client.post(path, json=body, headers=headers) if body is not None else client.get(path, headers=headers)

    for headers in ({}, bearer("msa_1_" + "x" * 43), bearer("nonsense"), {"Authorization": "Basic abc"},
                    bearer(tokens["revoked"])):
        r = call(headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/route", "/v1/chat/completions", "/v1/ingest"])
def test_a_collection_outside_the_token_is_403(client, tokens, path):
    body = {"question": Q_LEGAL, "messages": [{"role": "user", "content": Q_LEGAL}], "path": "/tmp",
            "collection": "legal"}
    r = client.post(path, json=body, headers=bearer(tokens["ops"]))
    assert r.status_code == 403 and "legal" in r.json()["error"]["message"]
    r = client.post(path, json={**body, "collection": "nonexistent"}, headers=bearer(tokens["both"]))
    assert r.status_code == 403


def test_the_right_collection_is_200(client, tokens):
    for name in ("legal", "both"):
        r = client.post("/v1/route", json={"question": Q_LEGAL, "collection": "legal"}, headers=bearer(tokens[name]))
        assert r.status_code == 200
        assert r.json()["docs"][0]["path"].startswith("contracts/")


def test_without_a_collection_a_token_sees_only_its_own(client, tokens, two_collections):
    """The code question routed with the legal token finds only contracts: the restriction reaches
    routing, not only a filter of the results."""
    legal_ids = {d.id for d in two_collections.live_documents("legal")}
    r = client.post("/v1/route", json={"question": Q_CODE, "top_k": 50, "mode": "msa"}, headers=bearer(tokens["legal"]))
    assert r.status_code == 200
    assert {d["doc_id"] for d in r.json()["docs"]} == legal_ids  # msa mode scores every document it may see
    assert r.json()["memory"]["documents"] == len(legal_ids)
    a = client.post("/v1/ask", json={"question": Q_CODE, "mode": "hybrid"}, headers=bearer(tokens["legal"])).json()
    cited = {c["doc_id"] for c in a["citations"]} | {d["doc_id"] for rd in a["rounds"] for d in rd["routed"]}
    assert cited <= legal_ids
    # Several collections and none named: the client must pick.
    r = client.post("/v1/route", json={"question": Q_CODE}, headers=bearer(tokens["both"]))
    assert r.status_code == 400 and "name one" in r.json()["error"]["message"]


def test_no_auth_sees_every_collection(engine, two_collections):
    from starlette.testclient import TestClient

    from msa_agent.serve import create_app

    with TestClient(create_app(engine, two_collections, auth=False)) as c:
        r = c.post("/v1/route", json={"question": Q_CODE, "top_k": 50, "mode": "msa"})
        assert r.status_code == 200
        assert {d["path"].split("/")[0] for d in r.json()["docs"]} >= {"code", "contracts"}
        assert c.get("/v1/status").json()["collections"] == ["legal", "ops"]


def test_a_document_is_read_only_through_a_token_that_grants_it(client, tokens, two_collections):
    """The page's preview: the cited document's text, 404 (not 403: nothing leaks) outside the
    token's collections, for unknown ids and for ids that are not numbers."""
    legal = two_collections.live_documents("legal")[0]
    ok = client.get(f"/v1/documents/{legal.id}", headers=bearer(tokens["legal"]))
    assert ok.status_code == 200
    doc = ok.json()
    assert doc["text"] == legal.text and doc["path"] == legal.path and doc["collection"] == "legal"
    assert doc["anchor"] == legal.anchor and isinstance(doc["anchor_detail"], dict)
    assert client.get(f"/v1/documents/{legal.id}", headers=bearer(tokens["both"])).status_code == 200
    for path in (f"/v1/documents/{legal.id}", "/v1/documents/999999", "/v1/documents/abc"):
        r = client.get(path, headers=bearer(tokens["ops"]))
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", path
    assert client.get("/v1/jobs", headers=bearer(tokens["ops"])).json() == {"jobs": []}


def test_the_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "/v1/ask" in r.text and r.headers["content-type"].startswith("text/html")


def test_status_for_a_scoped_token_counts_only_its_collections(engine, make_store, tmp_path):
    """A token's /v1/status totals (documents, tokens, chunks, tombstones, segments, bytes) are
    its collections', never the whole store's; sources and jobs too."""
    from starlette.testclient import TestClient

    from msa_agent.schedule import add_job
    from msa_agent.serve import create_app
    from msa_agent.store.tokens import create_token

    st = make_store()
    add_job(st, tmp_path / "ops", "1h", collection="ops")
    st.forget(tmp_path / "legal" / "contracts" / "supply.txt", "legal")  # a tombstone in legal only
    tok = {name: create_token(st, colls)[1] for name, colls in
           {"legal": ["legal"], "ops": ["ops"], "both": ["legal", "ops"]}.items()}
    whole = st.status()
    with TestClient(create_app(engine, st)) as c:
        got = {name: c.get("/v1/status", headers=bearer(t)).json() for name, t in tok.items()}
    legal, ops, both = got["legal"], got["ops"], got["both"]
    for key in ("documents", "tokens", "chunks", "segments"):
        assert 0 < legal[key] < whole[key] and 0 < ops[key] < whole[key], key
        assert legal[key] + ops[key] == whole[key] == both[key], key
    assert legal["tombstoned"] == whole["tombstoned"] > 0 and ops["tombstoned"] == 0
    assert 0 < legal["bytes_on_disk"] < whole["bytes_on_disk"] and 0 < ops["bytes_on_disk"] < whole["bytes_on_disk"]
    assert legal["collections"] == ["legal"] and ops["collections"] == ["ops"]
    assert {s["collection"] for s in legal["sources"]} == {"legal"} and not legal["jobs"]
    assert [j["collection"] for j in ops["jobs"]] == ["ops"]
