"""Crash-safety trials: SIGKILL `msa ingest` (store creation and its migrations included),
`msa compact`, `msa repair` and `msa forget` at every stage, then recover and check that nothing
committed was lost and that a re-run converges to the store a clean run builds.

    .venv/bin/python bench/crash_trials.py [--trials 60] [--seed 0] [--workdir DIR]

The tiny random model (tests' geometry, the default tokenizer) is loaded once; each trial forks a
child that runs the library's ingest (or compaction) with MSA_FAULT=STAGE:N (msa_agent.store.
fault_point: the child SIGKILLs itself the N-th time it reaches STAGE) or is SIGKILLed by the
parent after a random delay. After each kill the parent opens the store and checks:

- `verify` reports nothing but orphan segment directories ("has no row"); `compact` removes them
  and `verify` is then empty;
- every document the store held before the trial that the final state still has is live
  (documents lost: must be 0), and routing answers without error;
- re-running the ingest converges to exactly the clean run's store: the same live documents
  (path, anchor, content hash, document key) and the same routed (path, anchor) lists for a few
  questions in lexical and msa mode.

Prints one JSON object: trials run and survived, faults injected by stage, documents lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

INGEST_STAGES = ("create_db", "migration", "parse", "encode", "segment_file", "segment_written", "before_commit",
                 "after_commit")
UPDATE_STAGES = ("parse", "encode", "segment_written", "before_commit", "after_commit", "tombstone")
COMPACT_STAGES = ("compact_segment", "compact_commit", "compact_cleanup")
REPAIR_STAGES = ("compact_commit", "compact_cleanup", "repair_cleared", "parse", "encode", "before_commit",
                 "after_commit")
FORGET_STAGES = ("forget",)
FORGOTTEN = "note_1.md"  # what the forget trials forget (tree2)
BATCH_TOKENS = 600  # small batches: several segments and commits per run
COMPACT_CHUNKS = 24

APP_CORPUS = ROOT / "tests" / "app" / "corpus"
QUESTIONS = ("pump-3 pressure alarm", "termination notice period")


def make_tree(root: Path) -> Path:
    """~16 files: the app corpus (contract, policy, code, log) plus generated code, logs and notes."""
    shutil.copytree(APP_CORPUS, root)
    for i in range(4):
        (root / f"svc_{i}.py").write_text(
            f'"""Service {i}."""\n\n\ndef handler_{i}(x):\n    """Handle request kind {i} for pump-{i}."""\n'
            f"    return x * {i + 2}\n\n\nclass Worker{i}:\n    def run(self):\n        return handler_{i}({i})\n")
        (root / f"plant_{i}.log").write_text("".join(
            f"2024-03-0{i + 1}T10:{m:02d}:00Z pump-{i} pressure={100 + m} alarm={'HIGH' if m % 7 == 0 else 'ok'}\n"
            for m in range(40)))
        (root / f"note_{i}.md").write_text(
            f"# Note {i}\n\nTermination notice period for site {i} is {30 + i} days.\n\n## Emergency stop\n\n"
            f"Press the red button on line {i}; the emergency stop latches until reset.\n")
    return root


def change_tree(root: Path) -> None:
    """Delete one file, modify two, add one: the next ingest tombstones, re-encodes and adds."""
    (root / "note_0.md").unlink()
    (root / "svc_1.py").write_text('"""Service 1, rewritten."""\n\n\ndef handler_1(x):\n    return -x\n')
    with open(root / "plant_2.log", "a") as f:
        f.write("2024-03-03T11:00:00Z pump-2 pressure=180 alarm=HIGH\n")
    (root / "note_9.md").write_text("# Note 9\n\nA new note about the pump-9 liability cap.\n")


def _locked(st, fn):  # noqa: ANN001, ANN202
    with st.write_lock():
        return fn()


def damage_a_segment(store: Path) -> None:
    """Flip a byte of the keys of the first segment (by name): `verify` and `repair` find it."""
    seg = sorted(p for p in (store / "segments").iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    f = seg / "k.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))


def snapshot(store, engine, collection: str = "default") -> dict:  # noqa: ANN001
    """What a store answers with: its live documents (path, anchor, content hash, key) and the
    routed (path, anchor) lists for a few questions in lexical and msa mode."""
    from msa_agent.ask import route

    docs = sorted((d.path, d.anchor, d.content_hash, d.doc_key or "") for d in store.live_documents(collection))
    routes = {}
    for q in QUESTIONS:
        for mode in ("lexical", "msa"):
            r = route(store, engine, q, collection=collection, mode=mode)
            routes[(q, mode)] = [(h["path"], h["anchor"]) for h in r["docs"]]
    return {"docs": docs, "routes": routes}




class Trials:
    def __init__(self, engine, workdir: Path, model_dir: Path) -> None:  # noqa: ANN001
        from msa_agent import pipeline
        from msa_agent.store import Store

        self.engine, self.work, self.Store, self.pipeline = engine, workdir, Store, pipeline
        # Torch cannot compute in a child forked from a process that has computed (its thread
        # pools hang), so children come from a server that loads the model and never computes.
        self.server = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(model_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        self.tree = make_tree(workdir / "tree")  # fresh ingests
        self.tree2 = make_tree(workdir / "tree2")  # ingested as v1, then changed to v2
        self.base1 = workdir / "base1"
        self._ingest(self.tree2, self.base1, count=False)
        change_tree(self.tree2)
        time.sleep(0.01)
        self.base2 = workdir / "base2"
        shutil.copytree(self.base1, self.base2)
        self.counts: dict[str, Counter] = {}
        self.counts["update"] = self._ingest(self.tree2, self.base2, count=True)
        fresh = workdir / "fresh"
        self.counts["ingest"] = self._ingest(self.tree, fresh, count=True)
        c = workdir / "compacted"
        shutil.copytree(self.base2, c)
        self.counts["compact"] = self._compact(c, count=True)
        self.damaged = workdir / "damaged"  # base2 with one segment's keys flipped: what repair mends
        shutil.copytree(self.base2, self.damaged)
        damage_a_segment(self.damaged)
        r = workdir / "repaired"
        shutil.copytree(self.damaged, r)
        self.counts["repair"] = self._repair(r, count=True)
        f = workdir / "forgotten"
        shutil.copytree(self.base2, f)
        self.counts["forget"] = self._forget(f, count=True)
        self.ref = {"ingest": self._snap(fresh), "update": self._snap(self.base2), "compact": self._snap(c)}
        # What a trial converges to after recovery: the same command run cleanly, then the same
        # re-ingest (re-added documents get new ids, which order ties in routing differently
        # from base2's; the documents themselves are the same).
        for kind, d in (("repair", r), ("forget", f)):
            self._ingest(self.tree2, d, count=False)
            self.ref[kind] = self._snap(d)
        self.n = 0

    # ---- running the library, in this process or in a forked child ----------------------------

    def _points(self, counter: Counter | None):  # noqa: ANN202
        """Patch fault_point where it is used: count the points reached (None: restore)."""
        from msa_agent.store import segments, store

        real = segments.fault_point
        mods = (segments, store, self.pipeline)  # schema calls segments.fault_point
        if counter is None:
            return lambda: None

        def counting(name: str) -> None:
            counter[name] += 1
            real(name)

        saved = [(m, m.__dict__["fault_point"]) for m in mods]
        for m in mods:
            m.fault_point = counting
        return lambda: [setattr(m, "fault_point", f) for m, f in saved]

    def _ingest(self, root: Path, store: Path, count: bool) -> Counter:
        c: Counter = Counter()
        undo = self._points(c if count else None)
        old = self.pipeline.BATCH_TOKENS
        self.pipeline.BATCH_TOKENS = BATCH_TOKENS
        try:
            st = self.Store.open(store, create=True)
            self.pipeline.ingest_dir(root, st, self.engine)
            st.close()
        finally:
            self.pipeline.BATCH_TOKENS = old
            undo()
        return c

    def _counted(self, store: Path, count: bool, command) -> Counter:  # noqa: ANN001
        """`command(store)` on the opened store, counting the fault points it reaches."""
        c: Counter = Counter()
        undo = self._points(c if count else None)
        try:
            st = self.Store.open(store)
            command(st)
            st.close()
        finally:
            undo()
        return c

    def _compact(self, store: Path, count: bool) -> Counter:
        return self._counted(store, count, lambda st: _locked(st, lambda: st.compact(max_chunks=COMPACT_CHUNKS)))

    def _repair(self, store: Path, count: bool) -> Counter:
        return self._counted(store, count, lambda st: self.pipeline.repair_store(st, self.engine))

    def _forget(self, store: Path, count: bool) -> Counter:
        return self._counted(store, count, lambda st: _locked(st, lambda: st.forget(self.tree2 / FORGOTTEN)))

    def _snap(self, store: Path) -> dict:
        st = self.Store.open(store)
        try:
            return snapshot(st, self.engine)
        finally:
            st.close()

    def _child(self, kind: str, store: Path, fault: str | None, delay: float | None) -> tuple[bool, float]:
        """Run one ingest/compaction in a child the fork server forks; True when it was killed."""
        root = self.tree if kind == "ingest" else self.tree2
        req = {"kind": kind, "root": str(root), "store": str(store), "fault": fault, "delay": delay,
               "forget": str(self.tree2 / FORGOTTEN)}
        self.server.stdin.write(json.dumps(req) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError("the fork server died")
        rep = json.loads(line)
        if rep.get("error"):
            raise RuntimeError(f"child {kind} {fault}: {rep['error']}")
        return rep["killed"], rep["seconds"]

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.stdin.close()
            self.server.wait(30)

    # ---- one trial --------------------------------------------------------------------------

    def trial(self, kind: str, fault: str | None = None, delay: float | None = None) -> dict:
        self.n += 1
        store = self.work / f"trial-{self.n}"
        if kind == "update":
            shutil.copytree(self.base1, store)
        elif kind in ("compact", "forget"):
            shutil.copytree(self.base2, store)
        elif kind == "repair":
            shutil.copytree(self.damaged, store)
        before = set()
        if store.exists():
            st = self.Store.open(store)
            before = {(d.path, d.anchor, d.content_hash, d.doc_key or "") for d in st.live_documents("default")}
            st.close()
        killed, _ = self._child(kind, store, fault, delay)
        ref = self.ref[kind]
        out = {"kind": kind, "fault": fault, "delay": delay, "killed": killed, "problems": [], "lost": 0}
        if not (store / "msa.db").exists():
            out["ok"] = True  # killed before the store was created
            shutil.rmtree(store, ignore_errors=True)
            return out
        if kind == "repair":
            self._repair(store, count=False)  # a repair run again finishes an interrupted one
        st = self.Store.open(store)
        try:
            problems = st.verify()
            out["problems"] = [p for p in problems if "has no row" not in p]
            out["orphans"] = len(problems) - len(out["problems"])
            live = {(d.path, d.anchor, d.content_hash, d.doc_key or "") for d in st.live_documents("default")}
            kept = before & set(ref["docs"])
            if kind == "forget":  # the forgotten file's documents may be gone: that is the command
                kept = {d for d in kept if d[0] != FORGOTTEN}
            out["lost"] = len(kept - live)
            from msa_agent.ask import route

            route(st, self.engine, "pump-3 pressure alarm", mode="lexical")  # answers from what is committed
            with st.write_lock():
                st.compact()
            out["problems"] += st.verify()
        finally:
            st.close()
        if kind == "compact":
            self._compact(store, count=False)
        self._ingest(self.tree if kind == "ingest" else self.tree2, store, count=False)
        if kind == "compact":
            self._compact(store, count=False)
        got = self._snap(store)
        # forget and repair killed before their commit leave base2 as it was (its ids, its order
        # of routing ties); after it, the clean run's state: either is whole
        alike = [ref] + ([self.ref["update"]] if kind in ("forget", "repair") else [])
        out["converged"] = got in alike
        if not out["converged"]:
            out["diff"] = {"missing": sorted(set(ref["docs"]) - set(got["docs"]))[:5],
                           "extra": sorted(set(got["docs"]) - set(ref["docs"]))[:5],
                           "routes": [k for k in ref["routes"] if ref["routes"][k] != got["routes"].get(k)][:3]}
        out["ok"] = out["converged"] and not out["problems"] and out["lost"] == 0
        shutil.rmtree(store, ignore_errors=True)
        return out

    def plan(self, n: int, rng: random.Random) -> list[tuple[str, str | None, float | None]]:
        """Every (stage, occurrence) a clean run reaches, round-robin over stages, then random-time kills."""
        staged = []
        for kind, stages in (("ingest", INGEST_STAGES), ("update", UPDATE_STAGES), ("compact", COMPACT_STAGES),
                             ("repair", REPAIR_STAGES), ("forget", FORGET_STAGES)):
            for s in stages:
                reached = self.counts[kind][s]
                if reached:
                    occ = sorted({1, reached, *rng.sample(range(1, reached + 1), min(2, reached))})
                    staged += [(kind, f"{s}:{k}", None) for k in occ]
        n_random = max(n // 5, n - len(staged))
        rng.shuffle(staged)
        firsts = {}  # every (kind, stage) at least once, then the other occurrences
        for s in staged:
            firsts.setdefault((s[0], s[1].split(":")[0]), s)
        rest = [s for s in staged if s not in firsts.values()]
        staged = (list(firsts.values()) + rest)[: max(n - n_random, len(firsts))]
        n_random = max(0, n - len(staged))
        randoms = [(rng.choice(("ingest", "update", "compact", "repair", "forget")), None, None) for _ in range(n_random)]
        return staged + randoms

    def run(self, n: int, seed: int = 0) -> dict:
        rng = random.Random(seed)
        durations = {}
        for kind, base in (("ingest", None), ("update", self.base1), ("compact", self.base2),
                           ("repair", self.damaged), ("forget", self.base2)):
            store = self.work / f"timing-{kind}"
            if base is not None:
                shutil.copytree(base, store)
            durations[kind] = self._child(kind, store, None, None)[1]
            shutil.rmtree(store)
        t0 = time.perf_counter()
        results = []
        for kind, fault, _ in self.plan(n, rng):
            delay = None if fault else rng.uniform(0.0, durations[kind])
            results.append(self.trial(kind, fault, delay))
        by_stage = Counter(r["fault"].split(":")[0] if r["fault"] else f"random-{r['kind']}" for r in results
                           if r["killed"])
        return {
            "trials": len(results), "survived": sum(r["ok"] for r in results),
            "killed": sum(r["killed"] for r in results), "faults_by_stage": dict(sorted(by_stage.items())),
            "documents_lost": sum(r["lost"] for r in results),
            "orphan_directories_compacted": sum(r.get("orphans", 0) for r in results),
            "points_per_clean_run": {k: dict(v) for k, v in self.counts.items()},
            "seconds": round(time.perf_counter() - t0, 1),
            "failures": [r for r in results if not r["ok"]][:10],
        }


def _wait(pid: int, delay: float | None) -> tuple[bool, str | None]:
    if delay is not None:
        end = time.monotonic() + delay
        while time.monotonic() < end:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return False, None
            time.sleep(0.002)
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False, "hung"
        time.sleep(0.002)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
        return False, f"exit status {os.WEXITSTATUS(status)}"
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, None


def serve(model_dir: str) -> None:
    """The fork server: one JSON request a line on stdin, one reply a line on stdout."""
    from msa_agent import pipeline
    from msa_agent.engine import Engine
    from msa_agent.store import Store, segments

    engine = Engine.load(model_dir, dtype="float32")
    out = sys.stdout
    sys.stdout = sys.stderr
    for line in sys.stdin:
        req = json.loads(line)
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                segments._FAULT_SEEN.clear()
                if req["fault"]:
                    os.environ["MSA_FAULT"] = req["fault"]
                st = Store.open(req["store"], create=req["kind"] in ("ingest", "update"))
                if req["kind"] == "compact":
                    with st.write_lock():
                        st.compact(max_chunks=COMPACT_CHUNKS)
                elif req["kind"] == "repair":
                    pipeline.BATCH_TOKENS = BATCH_TOKENS
                    pipeline.repair_store(st, engine)
                elif req["kind"] == "forget":
                    with st.write_lock():
                        st.forget(req["forget"])
                else:
                    pipeline.BATCH_TOKENS = BATCH_TOKENS
                    pipeline.ingest_dir(Path(req["root"]), st, engine)
                st.close()
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                code = 3
            os._exit(code)
        killed, err = _wait(pid, req["delay"])
        out.write(json.dumps({"killed": killed, "error": err, "seconds": time.perf_counter() - t0}) + "\n")
        out.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("msa_tests_conftest", ROOT / "tests" / "conftest.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    from msa_agent.engine import Engine
    from msa_agent.model.weights import _convert_tokenizer, default_model_file

    work = Path(args.workdir or tempfile.mkdtemp(prefix="msa-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MSA_HOME"] = str(work / "home")
    tok = work / "tokenizer"
    _convert_tokenizer(default_model_file(), tok)
    model = conf.write_tiny_model(work / "model", tok)
    engine = Engine.load(str(model), dtype="float32")
    trials = Trials(engine, work / "trials", model)
    try:
        print(json.dumps(trials.run(args.trials, args.seed), indent=2))
    finally:
        trials.close()


if __name__ == "__main__":
    main()
