"""Evaluation benches: NIAH, scaling, QA against RAG baselines.

- `niah.run_niah`: RULER's 8 NIAH subtasks over memories of chosen lengths (`msa bench niah`).
- `scale.run_scale`: one question set over growing memories, distractors added (`msa bench scale`).
- `qa.run_qa`: msa against BM25 + reader and dense MiniLM + reader at k = 1, 5, 10 (`msa bench qa`).

Each writes `<out>/<bench>.jsonl` (one line per item; a rerun with the same settings resumes, and
more lengths, samples, sizes or k extend it), `<bench>.json`, `<bench>.md` and `<bench>.png`.
Everything generated (haystacks, needles, corpora, questions) comes from the seed alone.
"""
