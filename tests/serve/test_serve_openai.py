"""The OpenAI-compatible endpoint through the official `openai` client, against a real uvicorn
server on a free loopback port: plain and streamed completions, citations passed through."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn

from msa_agent.ask import ask
from msa_agent.serve import create_app

Q = "What is the default timeout_s of PumpController.emergency_stop?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(engine, two_collections, tokens):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, two_collections), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive()


@pytest.fixture
def client(server_url, tokens):
    import openai

    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=tokens["ops"], max_retries=0, timeout=60)


def test_chat_completion(client, engine, two_collections):
    r = client.chat.completions.create(model="anything", messages=[
        {"role": "system", "content": "ignored"}, {"role": "user", "content": Q}])
    want = ask(two_collections, engine, Q, collection="ops")
    assert r.model == engine.name
    assert r.choices[0].message.content == want.answer and r.choices[0].finish_reason == "stop"
    assert r.model_extra["citations"] == want.citations
    assert [d["doc_id"] for d in r.model_extra["msa"]["rounds"][0]["routed"]] == \
        [d["doc_id"] for d in want.rounds[0]["routed"]]
    assert r.usage.completion_tokens == want.timing["tokens"]


def test_chat_completion_streamed(client, engine, two_collections):
    stream = client.chat.completions.create(model="x", stream=True, messages=[{"role": "user", "content": Q}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    want = ask(two_collections, engine, Q, collection="ops")
    assert text == want.answer
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["citations"] == want.citations
    assert all(c.model == engine.name for c in chunks)


def test_models_and_errors(client, server_url, engine):
    import openai

    assert [m.id for m in client.models.list()] == [engine.name]
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": Q}],
                                       extra_body={"collection": "legal"})
    bad = openai.OpenAI(base_url=f"{server_url}/v1", api_key="msa_9_" + "y" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="x", messages=[{"role": "user", "content": Q}])


def test_raw_sse_stream_over_http(server_url, tokens):
    """/v1/ask streams over a real socket: token events, then the result."""
    import httpx2

    with httpx2.stream("POST", f"{server_url}/v1/ask", json={"question": Q, "stream": True}, timeout=60,
                       headers={"Authorization": f"Bearer {tokens['ops']}"}) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    events = [b.split("\n", 1)[0] for b in body.strip().split("\n\n")]
    assert events[-1] == "event: result" and set(events[:-1]) == {"event: token"}


def test_msa_ask_and_route_with_server_print_what_in_process_prints(server_url, tokens, two_collections, monkeypatch,
                                                                    tiny_model_dir):
    """`msa ask --server URL` prints the same answer and sources as in-process `msa ask`."""
    from typer.testing import CliRunner

    from msa_agent.cli.main import app

    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MSA_DTYPE", "float32")
    runner = CliRunner()
    args = ["ask", Q, "--collection", "ops"]
    local = runner.invoke(app, [*args, "--store", str(two_collections.path)])
    remote = runner.invoke(app, [*args, "--server", server_url, "--token", tokens["ops"]])
    assert local.exit_code == remote.exit_code == 0, (local.output, remote.output)
    assert remote.stdout == local.stdout and "Sources" in remote.stdout
    local_json = json.loads(runner.invoke(app, [*args, "--store", str(two_collections.path), "--json"]).stdout)
    monkeypatch.setenv("MSA_SERVER", server_url)
    monkeypatch.setenv("MSA_TOKEN", tokens["ops"])
    remote_json = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert remote_json["answer"] == local_json["answer"] and remote_json["citations"] == local_json["citations"]
    r_local = json.loads(runner.invoke(app, ["route", Q, "--collection", "ops", "--json", "--store",
                                             str(two_collections.path), "--server", ""]).stdout)
    r_remote = json.loads(runner.invoke(app, ["route", Q, "--collection", "ops", "--json"]).stdout)
    assert r_remote["docs"] == r_local["docs"]
    # Refusals are one-line user errors (exit 1), like any other.
    for argv, needle in (([*args, "--token", "msa_1_" + "z" * 43], "401 invalid or revoked token"),
                         (["ask", Q, "--collection", "legal"], "403 this token does not grant collection 'legal'"),
                         ([*args, "--server", "http://127.0.0.1:9"], "cannot reach the server")):
        res = runner.invoke(app, argv)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
        assert needle in res.stderr and "Traceback" not in res.output and res.stdout == ""
