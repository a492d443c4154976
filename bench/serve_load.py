"""Load on `msa serve`: N concurrent clients asking the demo questions for a fixed time.

Each client streams `POST /v1/ask` in a loop (the three `make demo` questions in turn) and
records time to first token, total latency and errors. Prints one JSON object per concurrency.

    # a server started here, on the default model and the demo store (MSA_HOME=.msa-demo):
    MSA_HOME=.msa-demo .venv/bin/python bench/serve_load.py --store .msa-demo/store --clients 1 4 --seconds 60
    # or against a running server:
    .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8750 --token msa_… --clients 1 4 16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
import urllib.request

QUESTIONS = [
    "What does Blue Harbor Robotics pay per quarter under the supply agreement?",
    "What is the default timeout_s of PumpController.emergency_stop?",
    "Which sensor reported status ALARM, and at what time?",
]


def one_ask(url: str, token: str | None, question: str) -> tuple[float, float]:
    """(time to first token, total) in seconds for one streamed question."""
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


def start_server(store: str, device: str) -> tuple[str, object, threading.Thread]:
    import socket

    import uvicorn

    from msa_agent.engine import Engine
    from msa_agent.serve import create_app
    from msa_agent.store import Store

    engine = Engine.load(purpose="generate", device=device)
    st = Store.open(store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, st, auth=False), host="127.0.0.1", port=port,
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
    args = ap.parse_args()
    server = thread = None
    url = args.url
    if url is None:
        url, server, thread = start_server(args.store, args.device)
    url = url.rstrip("/")
    for q in QUESTIONS:  # warm: first calls pay for kernel set-up and index loads
        one_ask(url, args.token, q)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "url": url}))
    for n in args.clients:
        print(json.dumps(load(url, args.token, n, args.seconds)), flush=True)
    if server is not None:
        server.should_exit = True
        thread.join(60)


if __name__ == "__main__":
    main()
