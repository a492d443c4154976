"""route() and ask(): every routing mode over a real (tiny-model) memory, the interleave rounds,
citations of live documents, and a store built with another model."""

from __future__ import annotations

import pytest

from msa_agent.ask import ask, route
from msa_agent.errors import BadInput, FingerprintMismatch
from msa_agent.memory import MemoryIndex
from msa_agent.pipeline import ingest_dir
from msa_agent.reader import ReadPolicy

HIT_KEYS = {"doc_id", "path", "kind", "anchor", "score"}


@pytest.fixture
def layer_calls(monkeypatch):
    """The router layers MemoryIndex.doc_scores is called for, in order."""
    calls: list[int] = []
    real = MemoryIndex.doc_scores

    def spy(self, layer, q_r):
        calls.append(layer)
        return real(self, layer, q_r)

    monkeypatch.setattr(MemoryIndex, "doc_scores", spy)
    return calls


@pytest.mark.parametrize("mode", ["auto", "msa", "lexical", "hybrid"])
def test_route_in_every_mode(built, engine, mode, layer_calls):
    live = {d.id: d for d in built.live_documents(None)}
    res = route(built, engine, "What is the default timeout_s of PumpController.emergency_stop?", mode=mode, top_k=3)
    assert res["mode"] == ("lexical" if mode == "auto" else mode)  # no trained router: auto is lexical
    docs = res["docs"]
    assert 0 < len(docs) <= 3
    assert all(set(d) == HIT_KEYS for d in docs)
    assert [d["score"] for d in docs] == sorted((d["score"] for d in docs), reverse=True)
    assert len({d["doc_id"] for d in docs}) == len(docs)
    for d in docs:
        row = live[d["doc_id"]]
        assert (d["path"], d["kind"], d["anchor"]) == (row.path, row.kind, row.anchor)
    if res["mode"] == "lexical":
        assert layer_calls == []
        assert docs[0]["path"] == "code/pump.py" and "PumpController" in live[docs[0]["doc_id"]].text
    else:
        assert layer_calls == engine.cfg.router_layers  # each router layer routed once
    assert res["memory"] == {"documents": len(live), "chunks": sum(d.n_chunks for d in live.values())}


def test_route_top_k_defaults_to_the_models(built, engine):
    assert len(route(built, engine, "pump valve bearings agreement sensor", mode="msa")["docs"]) == engine.cfg.msa.top_k_docs
    assert len(route(built, engine, "pump valve bearings agreement sensor", mode="msa", top_k=1)["docs"]) == 1


def test_ask_rounds_and_citations(built, engine, layer_calls):
    live = {d.id for d in built.live_documents(None)}
    streamed: list[str] = []
    # The plain reading policy: the tiny random model's words stream and are cited as they are
    # (the focused policy's grounding would replace them; tests/app/test_app_focus.py covers it).
    res = ask(built, engine, "Which sensor reported status ALARM?", mode="msa", rounds=2, max_new_tokens=6,
              on_token=streamed.append, policy=ReadPolicy.plain())
    assert res.mode == "msa"
    assert isinstance(res.answer, str) and res.answer == "".join(streamed).strip()
    assert 1 <= len(res.rounds) <= 2
    assert res.rounds[0]["routed"], "per-layer routing picked nothing"
    injected: list[int] = []
    for r in res.rounds:
        assert {d["doc_id"] for d in r["routed"]} <= live
        assert set(r["injected"]) <= {d["doc_id"] for d in r["routed"]}
        injected += r["injected"]
    assert len(injected) == len(set(injected))  # a document is injected once
    assert res.citations and {c["doc_id"] for c in res.citations} <= set(injected)
    assert all(HIT_KEYS <= set(c) for c in res.citations)
    # Routing runs in every router layer for each round, and again while generating.
    L = len(engine.cfg.router_layers)
    assert len(layer_calls) >= L * (len(res.rounds) + 1) and set(layer_calls) == set(engine.cfg.router_layers)
    t = res.timing
    assert 1 <= t["tokens"] <= 6 and t["prompt_tokens"] > 0 and t["total_ms"] >= t["route_ms"]


def test_ask_one_round(built, engine):
    res = ask(built, engine, "What does Blue Harbor Robotics pay per quarter?", rounds=1, max_new_tokens=2)
    assert len(res.rounds) == 1 and res.mode == "lexical"
    assert res.rounds[0]["routed"][0]["path"] == "contracts/supply.txt"
    assert {c["doc_id"] for c in res.citations} <= set(res.rounds[0]["injected"])


def test_an_empty_collection(built, engine):
    with pytest.raises(BadInput, match="no documents in collection elsewhere"):
        ask(built, engine, "anything", collection="elsewhere")
    for mode in ("msa", "lexical", "hybrid"):
        with pytest.raises(BadInput, match="no documents in collection 'elsewhere'"):
            route(built, engine, "anything", collection="elsewhere", mode=mode)


def test_another_models_store_is_refused_until_reencoded(corpus, store, engine, other_engine):
    ingest_dir(corpus, store, engine)
    old_ids = {d.id for d in store.live_documents(None)}
    old_segs = {p.name for p in store.segments_dir.iterdir()}
    for call in (lambda: route(store, other_engine, "pump", mode="lexical"),
                 lambda: route(store, other_engine, "pump", mode="msa"),
                 lambda: ask(store, other_engine, "pump", max_new_tokens=1),
                 lambda: ingest_dir(corpus, store, other_engine)):
        with pytest.raises(FingerprintMismatch, match="--reencode") as e:
            call()
        assert other_engine.fingerprint in str(e.value) and engine.fingerprint in str(e.value)
    assert {d.id for d in store.live_documents(None)} == old_ids  # nothing touched
    assert store.manifest["fingerprint"] == engine.fingerprint

    rep = ingest_dir(corpus, store, other_engine, reencode=True)
    assert (rep.added + rep.updated, rep.unchanged, rep.failed) == (4, 0, 0)
    live = store.live_documents(None)
    # Everything replaced: no row left from the old model, only new segments (document ids
    # start again from 1 in an emptied table, so they are no way to tell).
    assert live and store.status()["tombstoned"] == 0
    new_segs = {p.name for p in store.segments_dir.iterdir()}
    assert new_segs and not new_segs & old_segs
    assert {d.segment_id for d in live} == new_segs
    assert store.manifest["fingerprint"] == other_engine.fingerprint and store.verify() == []
    assert route(store, other_engine, "pump", mode="msa")["docs"]
    with pytest.raises(FingerprintMismatch):
        route(store, engine, "pump")


def test_bridge_lines_keep_the_sentences_that_match_the_question_best():
    from msa_agent.ask import bridge_lines

    project = "# Project Efboxi\n\nProject Efboxi is run by the Stoke Squad. It migrates billing reports to the warehouse.\n"
    other = "# Project Cenioxi\n\nProject Cenioxi is run by the Oblu Crew. It migrates billing reports to the warehouse.\n"
    q = "who is on call for the people responsible for project Efboxi?"
    assert bridge_lines(q, [project, other]) == ["# Project Efboxi", "Project Efboxi is run by the Stoke Squad."]
    # Nothing shared with the question: no bridge (the round routes with the whole evidence).
    assert bridge_lines("what is the moon made of?", [project]) == []
    assert bridge_lines("which squad handles the alarm?", ["// the alarm banner", "import time"]) == []  # one word
    assert bridge_lines(q, []) == []


def test_two_hop_interleave_follows_the_bridge_and_adds_no_lookalikes(engine, store, tmp_path):
    """Round 2 routes with the bridge sentence ("... run by the Stoke Squad"), finds the team
    document, and does not inject the other projects' documents that merely look alike."""
    root = tmp_path / "twohop"
    (root / "projects").mkdir(parents=True)
    (root / "teams").mkdir()
    teams = ["Stoke Squad", "Oblu Crew", "Jatwa Guild", "Ferrin Squad"]
    for i, (proj, team) in enumerate(zip(["Efboxi", "Cenioxi", "Arcenpi", "Tuzuuv"], teams)):
        (root / "projects" / f"{proj.lower()}.md").write_text(
            f"# Project {proj}\n\nProject {proj} is run by the {team}. It migrates billing reports to the new warehouse.\n")
        (root / "teams" / f"team-{i}.md").write_text(
            f"# {team}\n\nThe {team} handles incidents in rotation; the current on-call engineer is Person {i}.\n")
    ingest_dir(root, store, engine, collection="twohop")
    res = ask(store, engine, "who is on call for the people responsible for project Efboxi?", collection="twohop",
              mode="lexical", rounds=3, max_new_tokens=2)
    paths = {d.id: d.path for d in store.live_documents("twohop")}
    injected = [paths[i] for r in res.rounds for i in r["injected"]]
    assert injected[0] == "projects/efboxi.md"
    assert "teams/team-0.md" in [paths[i] for i in res.rounds[1]["injected"]]
    assert not any(p.startswith("projects/") for r in res.rounds[1:] for p in (paths[i] for i in r["injected"]))
