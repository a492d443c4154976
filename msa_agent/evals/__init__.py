"""Evaluation benches: NIAH, scaling, QA against RAG baselines."""
