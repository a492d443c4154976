"""Lexical search (BM25 over path, title and body): compound names decide, tombstones never
come back, collections stay apart."""

from __future__ import annotations

import pytest

from msa_agent.store import Store

FILES = {
    "code/pump.py": [
        ("PumpController", "class PumpController:\n    def emergency_stop(self, timeout_s=2.5):\n"
                           "        '''Stop the pump within timeout_s seconds.'''"),
        ("start_all", "def start_all(pumps):\n    for pump in pumps:\n        pump.start()"),
    ],
    "docs/pump_manual.md": [
        ("Pumps", "Each pump has a pump number. Pump pump-2 sits in the pump room; a pump halts when its "
                  "stop button is pressed."),
    ],
    "ops/incidents.txt": [
        ("Incidents", "On 3 March pump-3 tripped on high temperature and the night shift restarted it after "
                      "an inspection of the bearings, the seals, the inlet filter and the motor windings."),
    ],
    "ops/safety.txt": [
        ("Safety", "Emergency procedures. In any emergency the operator must stop the conveyor first, then "
                   "the press. Emergency exits are marked in green. To stop a machine press its red button; "
                   "emergency lighting stays on."),
    ],
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory, fill):
    """A store only read from, shared by the ranking tests."""
    st = Store.open(tmp_path_factory.mktemp("lexical"), create=True)
    fill(st, FILES)
    yield st, {d.id: d for d in st.live_documents(None)}
    st.close()


@pytest.fixture
def docs(store, fill):
    fill(store, FILES)
    return {d.id: d for d in store.live_documents(None)}


@pytest.mark.parametrize("query, want", [
    ("pump-3", "ops/incidents.txt"),
    ("What happened to pump-3?", "ops/incidents.txt"),
    ("pump-2", "docs/pump_manual.md"),
    ("emergency_stop", "code/pump.py"),
    ("What is the default timeout of emergency_stop?", "code/pump.py"),
    ("start_all", "code/pump.py"),
])
def test_compound_names_rank_the_document_naming_them_first(searched, query, want):
    store, docs = searched
    assert docs[store.lexical_search(None, query, 10)[0][0]].path == want


def test_a_compound_name_outranks_documents_that_only_share_its_words(searched):
    store, docs = searched
    # code/pump.py says "pump" in its path, title and body, far more often than the incident
    # report; only the report names pump-3.
    hits = store.lexical_search(None, "pump-3", 10)
    assert docs[hits[0][0]].path == "ops/incidents.txt"
    assert hits[0][1] > hits[1][1]


def test_scores_are_best_first_and_limited(searched):
    store, _ = searched
    hits = store.lexical_search(None, "pump stop emergency", 3)
    assert len(hits) == 3
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert all(s > 0 for _, s in hits)


@pytest.mark.parametrize("query", ["", "   ", "?!", "the of and"])
def test_queries_without_words(searched, query):
    store, docs = searched
    hits = store.lexical_search(None, query, 5)
    if query.strip(" ?!"):  # only stop words: searched as they are
        assert all(i in docs for i, _ in hits)
    else:
        assert hits == []


@pytest.mark.parametrize("query", ['"pump-3" AND (status)', "NEAR(pump stop)", "pump* OR -stop", "col:value ^x {y}"])
def test_query_syntax_characters_are_plain_text(searched, query):
    store, docs = searched
    assert all(i in docs for i, _ in store.lexical_search(None, query, 5))  # no FTS5 syntax error


def test_tombstoned_documents_are_never_returned(store, fill, docs):
    old = {i for i, d in docs.items() if d.path == "ops/incidents.txt"}
    fill(store, {"ops/incidents.txt": [("Incidents", "On 4 March the compressor leaked oil.")]}, seed=1)
    assert not {i for i, _ in store.lexical_search(None, "pump-3 tripped temperature", 50)} & old
    assert store.lexical_search(None, "tripped", 50) == []
    [(new_id, _)] = store.lexical_search(None, "compressor", 50)
    assert new_id not in old

    gone = {i for i, d in docs.items() if d.path == "code/pump.py"}
    assert store.remove_source("default", "/src/code/pump.py") == 2
    assert not {i for i, _ in store.lexical_search(None, "emergency_stop PumpController start_all", 50)} & gone
    assert store.lexical_search(None, "PumpController", 50) == []


def test_collections_stay_apart(store, fill):
    a = fill(store, {"notes.txt": [("Valve", "valve V-12 was replaced in May")]}, collection="plant-a", root="/a")
    b = fill(store, {"notes.txt": [("Valve", "valve V-12 was inspected in June")]}, collection="plant-b", root="/b",
             seed=1)
    assert [i for i, _ in store.lexical_search("plant-a", "valve V-12", 10)] == a
    assert [i for i, _ in store.lexical_search("plant-b", "valve V-12", 10)] == b
    assert sorted(i for i, _ in store.lexical_search(None, "valve V-12", 10)) == sorted(a + b)
    assert store.lexical_search("plant-c", "valve", 10) == []
    assert store.lexical_search("plant-a", "June", 10) == []


def test_a_date_phrase_finds_the_row_bm25_alone_misses(tmp_path, fill):
    from msa_agent.ask import date_phrases

    rows = {f"sensors/weather-{m}.csv": [(f"w{m}", "date,temp_max,wind\n" + "\n".join(
        f"2013/{m:02d}/{d:02d},{10 + d * 0.5:.1f},{d % 5}.0" for d in range(1, 29)))] for m in (6, 7)}
    prose = {"notes/july.txt": [("Notes", "The maximum temperature in July was a talking point in the daily "
                                          "weather data meeting; July data arrive late.")]}
    st = Store.open(tmp_path / "s", create=True)
    fill(st, {**rows, **prose})
    docs = {d.id: d for d in st.live_documents(None)}
    q = "In the daily weather data, what was the maximum temperature on July 4th 2013?"
    assert date_phrases(q)[0] == ("2013 07 04", 1.0) and ("4 jul 13", 1.0) in date_phrases(q)
    plain = [docs[i].path for i, _ in st.lexical_search(None, q, 5)]
    assert plain[0] == "notes/july.txt"  # the words alone favour the prose
    got = [docs[i].path for i, _ in st.lexical_search(None, q, 5, phrases=date_phrases(q))]
    assert got[0] == "sensors/weather-7.csv"
    st.close()


def test_a_date_phrase_finds_documents_when_no_word_of_the_question_does(tmp_path, fill):
    from msa_agent.ask import date_phrases

    st = Store.open(tmp_path / "s", create=True)
    fill(st, {"data/q.csv": [("q", "Date,Close\n20-Aug-03,26.45\n19-Aug-03,26.62")],
              "notes/a.txt": [("a", "Nothing about markets here.")]})
    docs = {d.id: d for d in st.live_documents(None)}
    q = "What was the closing price on August 20th 2003?"
    assert st.lexical_search(None, q, 5) == []  # no word of the question is in any document
    got = st.lexical_search(None, q, 5, phrases=date_phrases(q))
    assert [docs[i].path for i, _ in got] == ["data/q.csv"]
    st.close()
