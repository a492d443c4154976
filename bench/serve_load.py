"""Load on `msa serve`: N concurrent clients asking the demo questions for a fixed time.

Each client streams `POST /v1/ask` in a loop (the three `make demo` questions in turn) and
records time to first token, total latency and errors. Prints one JSON object per concurrency.
With `--cold N`, first (before any server starts) each demo question is asked N times by a cold
`msa ask` process (time to its first answer byte on stdout, and to its exit); with `--warm N`,
after the warm-up each question is asked N times in turn by one client (warm first token).
`--record PATH` writes everything, with the command and the machine, as one JSON file.

    # a server started here, on the default model and the demo store (MSA_HOME=.msa-demo):
    MSA_HOME=.msa-demo .venv/bin/python bench/serve_load.py --store .msa-demo/store --clients 1 4 --seconds 60
    # or against a running server:
    .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8750 --token msa_… --clients 1 4 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

QUESTIONS = [
    "What does Blue Harbor Robotics pay per quarter under the supply agreement?",
    "What is the default timeout_s of PumpController.emergency_stop?",
    "Which sensor reported status ALARM, and at what time?",
]


def one_ask(url: str, token: str | None, question: str, result: dict | None = None) -> tuple[float, float]:
    """(time to first token, total) in seconds for one streamed question; `result`, when given,
    receives the answer's mode, timing and how it was read."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{url}/v1/ask", method="POST", headers=headers,
                                 data=json.dumps({"question": question, "stream": True}).encode())
    t0 = time.perf_counter()
    first = None
    with urllib.request.urlopen(req, timeout=300) as r:
        event = None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
                if event == "token" and first is None:
                    first = time.perf_counter() - t0
                elif event == "error":
                    raise RuntimeError(line)
            elif line.startswith("data: ") and event == "result":
                total = time.perf_counter() - t0
                if result is not None:
                    data = json.loads(line[6:])
                    result.update(mode=data["mode"], timing=data["timing"], how=(data.get("reading") or {}).get("how"),
                                  answer=data["answer"])
                return (first if first is not None else total), total
    raise RuntimeError("no result event")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def load(url: str, token: str | None, clients: int, seconds: float) -> dict:
    lat: list[float] = []
    ttft: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(i: int) -> None:
        n = i
        while time.perf_counter() < stop_at:
            try:
                f, t = one_ask(url, token, QUESTIONS[n % len(QUESTIONS)])
                with lock:
                    ttft.append(f)
                    lat.append(t)
            except Exception as e:  # noqa: BLE001 - counted
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
            n += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0  # includes the requests that were in flight at the deadline
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(lat), "errors": len(errors),
            "req_per_s": round(len(lat) / wall, 3), "p50_s": round(pct(lat, 50), 3), "p95_s": round(pct(lat, 95), 3),
            "ttft_p50_s": round(pct(ttft, 50), 3), "ttft_p95_s": round(pct(ttft, 95), 3),
            "mean_s": round(statistics.fmean(lat), 3) if lat else None, "first_errors": errors[:3]}


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50_s": round(pct(xs, 50), 3), "p95_s": round(pct(xs, 95), 3),
            "min_s": round(min(xs), 3) if xs else None, "max_s": round(max(xs), 3) if xs else None}


def cold_asks(store: str, n: int) -> dict:
    """Each demo question asked `n` times by a fresh `msa ask` process: seconds to the first byte of
    the answer on stdout (the model load, the index build and routing all come before it) and to
    the process's exit."""
    msa = Path(sys.executable).with_name("msa")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ttft, total, errors = [], [], []
    for _ in range(n):
        for q in QUESTIONS:
            t0 = time.perf_counter()
            p = subprocess.Popen([str(msa), "ask", q, "--store", store], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=env)
            first = p.stdout.read(1)
            f = time.perf_counter() - t0
            p.stdout.read()
            rc = p.wait()
            if rc != 0 or not first:
                errors.append(f"exit {rc}: {q}")
                continue
            ttft.append(f)
            total.append(time.perf_counter() - t0)
    return {"ttft": summary(ttft), "total": summary(total), "errors": errors}


def warm_asks(url: str, token: str | None, n: int) -> dict:
    """Each demo question asked `n` times in turn by one client of the warm server."""
    ttft, total, last = [], [], {}
    for _ in range(n):
        for q in QUESTIONS:
            last[q] = {}
            f, t = one_ask(url, token, q, last[q])
            ttft.append(f)
            total.append(t)
    return {"ttft": summary(ttft), "total": summary(total), "last_answers": last}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version()}


def start_server(store: str, device: str) -> tuple[str, object, threading.Thread]:
    """`msa serve --no-auth` in this process, on a free port, through the library API."""
    import socket

    import uvicorn

    from msa_agent import Memory
    from msa_agent.serve import create_app

    mem = Memory.open(store, device=device)
    mem.engine("generate")  # loaded before the clock starts, as `msa serve` does
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(mem, auth=False), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server (default: start one here on --store)")
    ap.add_argument("--token")
    ap.add_argument("--store", default=".msa-demo/store")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cold", type=int, default=0, help="cold `msa ask` runs per demo question (needs --store)")
    ap.add_argument("--warm", type=int, default=0, help="warm sequential asks per demo question")
    ap.add_argument("--record", type=Path, help="write the whole run as one JSON file")
    args = ap.parse_args()
    rec: dict = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "machine": machine(),
                 "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "questions": QUESTIONS}
    print(json.dumps({"machine": rec["machine"]}), flush=True)
    if args.cold:
        rec["cold_msa_ask"] = cold_asks(args.store, args.cold)
        print(json.dumps({"cold_msa_ask": rec["cold_msa_ask"]}), flush=True)
    server = thread = None
    url = args.url
    if url is None:
        url, server, thread = start_server(args.store, args.device)
    url = url.rstrip("/")
    for q in QUESTIONS:  # warm: first calls pay for kernel set-up and index loads
        one_ask(url, args.token, q)
    if args.warm:
        rec["warm_serve"] = warm_asks(url, args.token, args.warm)
        print(json.dumps({"warm_serve": rec["warm_serve"]}), flush=True)
    rec["load"] = []
    for n in args.clients:
        rec["load"].append(load(url, args.token, n, args.seconds))
        print(json.dumps(rec["load"][-1]), flush=True)
    if server is not None:
        server.should_exit = True
        thread.join(60)
    rec["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(rec, indent=2) + "\n")


if __name__ == "__main__":
    main()
