"""Tiny seeded models for the model tests: random weights, random norm scales, fp32, CPU."""

from __future__ import annotations

import pytest
import torch

from msa_agent.model.config import Config, MSAConfig
from msa_agent.model.model import MSAModel


def tiny_config(
    arch: str = "llama",
    *,
    n_layer: int = 4,
    router: str | None = "2,3",
    P: int = 4,
    top_k_docs: int = 3,
    decouple: bool = False,
    tie: bool = True,
    head_dim: int = 0,
) -> Config:
    return Config(
        arch=arch,
        vocab_size=128,
        n_layer=n_layer,
        n_embd=64,
        n_head=4,
        n_kv_head=2,
        head_dim=head_dim,
        intermediate_size=96,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        max_position_embeddings=256,
        msa=MSAConfig(router_layer_idx=router, pooling_kernel_size=P, top_k_docs=top_k_docs,
                      decouple_router=decouple),
    )


def random_model(cfg: Config, seed: int = 0) -> MSAModel:
    """nn defaults for linears and embeddings, plus norm scales that are not all ones."""
    torch.manual_seed(seed)
    model = MSAModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture
def make_model():
    def make(seed: int = 0, **kw) -> MSAModel:
        return random_model(tiny_config(**kw), seed)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny ops on a shared 2-core runner: intra-op threads spin against other processes and
    make these tests several times slower, so run them on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
