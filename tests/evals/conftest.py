"""The tiny random model as both engines (encode and generate), a tiny random sentence encoder for
the dense baseline, and a fast prose source, so every bench runs end to end in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from msa_agent.engine import Engine
from msa_agent.evals.common import Engines

# A small package's docstrings: the essay haystack's machinery without parsing NumPy.
TEST_PROSE = ("click",)


@pytest.fixture(scope="session")
def engines(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engines:
    # Loading writes a digest memo into MSA_HOME: keep it away from the real home.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("evals-home")))
        e = Engine.load(str(tiny_model_dir), dtype="float32")
    return Engines(e, e)


WORDS = ("company office city chief executive supply agreement guarantees obligations registered parent buys "
         "from under this who is the of in which what are all special magic numbers for mentioned provided text "
         "grass green sky blue sun yellow").split()


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer random BERT with a small WordPiece vocabulary, saved as a transformers directory."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny-encoder")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *"abcdefghijklmnopqrstuvwxyz0123456789",
             *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"], *".,?'-"]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(out / "vocab.txt")).save_pretrained(str(out))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(str(out))
    return out
