"""`msa token create|list|revoke` (the store keeps only salted digests), `msa serve`'s refusals,
a real `msa serve` process answering and stopping on SIGTERM, and graceful shutdown finishing an
answer in flight."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import uvicorn
from typer.testing import CliRunner

from msa_agent.cli.main import app
from msa_agent.serve import check_bind, create_app, is_loopback
from msa_agent.errors import BadInput
from msa_agent.store.tokens import check_token

runner = CliRunner()


def run(*args, code=0):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr, res.exception)
    assert "Traceback" not in res.output
    return res


def one_line_error(res) -> str:
    assert isinstance(res.exception, SystemExit) and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_token_create_list_revoke(tmp_path):
    store = tmp_path / "s"
    res = run("token", "create", "--collection", "legal", "--collection", "ops", "--label", "app", "--store", store)
    token = res.stdout.strip()
    assert token.startswith("msa_1_") and "cannot be shown again" in res.stderr
    with sqlite3.connect(store / "msa.db") as c:
        [(salt, digest, colls)] = c.execute("SELECT salt, digest, collections FROM tokens").fetchall()
        dump = "\n".join(c.iterdump())
    assert token.split("_", 2)[2] not in dump and json.loads(colls) == ["legal", "ops"]  # only the digest is kept
    assert len(salt) == 32 and len(digest) == 64
    from msa_agent.store import Store

    st = Store.open(store)
    assert check_token(st, token) == ["legal", "ops"]
    assert check_token(st, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    listed = json.loads(run("token", "list", "--store", store, "--json").stdout)["tokens"]
    assert [(t["id"], t["collections"], t["label"], t["active"]) for t in listed] == [(1, ["legal", "ops"], "app", True)]
    run("token", "revoke", "1", "--store", store)
    assert check_token(st, token) is None
    assert "revoked" in run("token", "list", "--store", store).stdout
    st.close()
    assert "no token 7" in one_line_error(run("token", "revoke", "7", "--store", store, code=1))
    assert "collection" in one_line_error(run("token", "create", "--collection", "a b", "--store", store, code=1))


def test_serve_refuses_to_open_up_without_tokens(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    store = tmp_path / "s"
    run("token", "list", "--store", store, code=1)  # no store yet: a user error
    from msa_agent.store import Store

    Store.open(store, create=True).close()
    line = one_line_error(run("serve", "--no-auth", "--host", "0.0.0.0", "--store", store, code=1))
    assert "--no-auth is allowed only on a loopback host" in line
    line = one_line_error(run("serve", "--host", "0.0.0.0", "--store", store, code=1))
    assert "no token" in line and "msa token create" in line
    line = one_line_error(run("serve", "--allow-root", tmp_path / "missing", "--store", store, code=1))
    assert "--allow-root" in line


def test_bind_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.com")
    check_bind("127.0.0.1", no_auth=True, tokens=0)
    check_bind("0.0.0.0", no_auth=False, tokens=1)
    with pytest.raises(BadInput):
        check_bind("0.0.0.0", no_auth=True, tokens=3)
    with pytest.raises(BadInput):
        check_bind("192.168.1.5", no_auth=False, tokens=0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_msa_serve_process_answers_and_stops_on_sigterm(tmp_path, tiny_model_dir, two_collections):
    port = _free_port()
    env = {**os.environ, "MSA_HOME": str(tmp_path / "home"), "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}
    proc = subprocess.Popen([sys.executable, "-m", "msa_agent.cli.main", "serve", "--no-auth", "--port", str(port),
                             "--store", str(two_collections.path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read())["ok"] is True
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
                time.sleep(0.2)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/route", method="POST",
                                     data=json.dumps({"question": "pump timeout", "collection": "ops"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["docs"][0]["path"] == "code/pump.py"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"on http://127.0.0.1:{port}" in err


def test_shutdown_finishes_an_answer_in_flight(engine, two_collections, monkeypatch):
    from msa_agent.serve import Server

    real = Server._ask
    started = threading.Event()

    def slow_ask(self, *a):
        started.set()
        time.sleep(1.0)
        return real(self, *a)

    monkeypatch.setattr(Server, "_ask", slow_ask)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, two_collections, auth=False), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    got: dict = {}

    def client() -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/ask", method="POST",
                                     data=json.dumps({"question": "pump timeout", "collection": "ops"}).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            got["status"], got["body"] = r.status, json.loads(r.read())

    t = threading.Thread(target=client)
    t.start()
    assert started.wait(10)
    server.should_exit = True  # what SIGTERM does
    t.join(30)
    thread.join(30)
    assert got["status"] == 200 and "answer" in got["body"]
    assert not thread.is_alive()


def test_a_store_from_before_tokens_opens_and_gains_the_table(tmp_path):
    """Migration 5 is additive: a store left by migrations 1-4 opens, keeps its rows, and takes tokens."""
    from sqlalchemy import create_engine, text

    from msa_agent.store import Store
    from msa_agent.store.schema import MIGRATIONS
    from msa_agent.store.tokens import create_token

    engine = create_engine(f"sqlite:///{tmp_path / 'msa.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"))
        for v in range(1, 5):
            MIGRATIONS[v - 1](conn)
            conn.execute(text("INSERT INTO schema_migrations VALUES (:v, '2025-01-01T00:00:00Z')"), {"v": v})
        conn.execute(text("INSERT INTO manifest VALUES ('fingerprint', 'abc')"))
    engine.dispose()
    st = Store.open(tmp_path)
    assert st.manifest == {"fingerprint": "abc"}
    _, token = create_token(st, ["legal"])
    assert check_token(st, token) == ["legal"]
    st.close()
    with sqlite3.connect(tmp_path / "msa.db") as c:
        assert [v for (v,) in c.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(range(1, len(MIGRATIONS) + 1))
