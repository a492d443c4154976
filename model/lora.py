"""Low-rank adapters (LoRA) for the reader: wrapped around an unfused model's linear layers for
training, merged into the base weights at load time for inference (no run-time overhead).

An adapter file is a safetensors file of `layers.{i}.{self_attn|mlp}.{name}.lora_a` (r, in) and
`.lora_b` (out, r) tensors; its metadata holds `rank` and `alpha`. Beside it, a JSON record with
the same stem says which backbone it was trained for (`backbone`, see `backbone_id`) and how.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from .model import MSAModel

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRAINED_DIR = Path(__file__).resolve().parent / "trained"
KIND = "reader-lora"


class LoRALinear(nn.Module):
    """y = W x + (alpha / r) · B A x, with W frozen. A and B are kept (and updated) in fp32; the
    low-rank product runs in the input's dtype (mixed precision, as autocast would: bf16 GEMMs
    with fp32 accumulation on the GPU, exact fp32 on fp32 inputs). A scale of 0 (`adapters_off`)
    skips the adapter entirely."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        out_f, in_f = base.weight.shape
        dev = base.weight.device
        self.lora_a = nn.Parameter(torch.empty(rank, in_f, device=dev, dtype=torch.float32))
        self.lora_b = nn.Parameter(torch.zeros(out_f, rank, device=dev, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.scale == 0:
            return y
        dt = x.dtype
        a = self.lora_a if dt == self.lora_a.dtype else self.lora_a.to(dt)
        b = self.lora_b * self.scale  # (out, r): tiny, so the scale costs nothing on the activations
        if b.dtype != dt:
            b = b.to(dt)
        return y + F.linear(F.linear(x, a), b)  # (..., out)

    def merged_weight(self) -> torch.Tensor:
        """W + scale · B A in the base weight's dtype (computed in fp32), as `merge_into_state` does."""
        w = self.base.weight
        return (w.float() + self.scale * (self.lora_b.float() @ self.lora_a.float())).to(w.dtype)


def _targets(model: MSAModel):  # noqa: ANN202 - yields (name, parent module, attribute)
    for i, block in enumerate(model.layers):
        for part, mod in (("self_attn", block.self_attn), ("mlp", block.mlp)):
            for name in TARGETS:
                if hasattr(mod, name):
                    yield f"layers.{i}.{part}.{name}", mod, name


def unfuse(model: MSAModel) -> MSAModel:
    """Drop the fused inference weights so the per-projection modules (and their adapters) run."""
    model._prefix_kv.clear()
    for block in model.layers:
        block.self_attn.w_qkv = None
        block.mlp.w_gate_up = None
    return model


def add_lora(model: MSAModel, rank: int = 16, alpha: float = 32.0, seed: int = 0) -> list[nn.Parameter]:
    """Freeze the model, wrap its seven linear layers per block with adapters, return the
    trainable parameters. The model is unfused first (fused weights would bypass the adapters)."""
    unfuse(model)
    for p in model.parameters():
        p.requires_grad_(False)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    params: list[nn.Parameter] = []
    for _, parent, name in _targets(model):
        lin = getattr(parent, name)
        if isinstance(lin, LoRALinear):
            raise ValueError("the model already has adapters")
        wrapped = LoRALinear(lin, rank, alpha)
        setattr(parent, name, wrapped)
        params += [wrapped.lora_a, wrapped.lora_b]
    torch.random.set_rng_state(gen_state)
    return params


def lora_state(model: MSAModel) -> dict[str, torch.Tensor]:
    """The adapters' tensors by file name."""
    out = {}
    for key, parent, name in _targets(model):
        lin = getattr(parent, name)
        if isinstance(lin, LoRALinear):
            out[f"{key}.lora_a"] = lin.lora_a.detach()
            out[f"{key}.lora_b"] = lin.lora_b.detach()
    return out


@contextmanager
def merged(model: MSAModel, *, base_only: bool = False, fuse: bool = True) -> Iterator[MSAModel]:
    """For inference (validation) inside training: every adapter wrapper is swapped for a plain
    linear layer holding W + scale · B A (or W alone with `base_only`), and the projections are
    fused, so generation runs the plain inference path; put back as it was on exit."""
    swapped: list[tuple[nn.Module, str, LoRALinear]] = []
    for _, parent, name in _targets(model):
        lin = getattr(parent, name)
        if isinstance(lin, LoRALinear):
            plain = lin.base
            if not base_only and lin.scale != 0:
                plain = nn.Linear(plain.in_features, plain.out_features, bias=plain.bias is not None,
                                  device=plain.weight.device, dtype=plain.weight.dtype)
                with torch.no_grad():
                    plain.weight.copy_(lin.merged_weight())
                    if lin.base.bias is not None:
                        plain.bias.copy_(lin.base.bias)
                plain.requires_grad_(False)
            setattr(parent, name, plain)
            swapped.append((parent, name, lin))
    model._prefix_kv.clear()
    if fuse:
        model.fuse()
    try:
        yield model
    finally:
        unfuse(model)
        for parent, name, lin in swapped:
            setattr(parent, name, lin)
        model._prefix_kv.clear()


def save_adapter(model: MSAModel, path: Path, *, dtype: torch.dtype = torch.bfloat16,
                 record: dict | None = None) -> Path:
    """Write the adapters as safetensors (`dtype`, bf16 by default: half the bytes) and, with a
    `record`, the JSON record beside it (`<stem>.json`)."""
    state = lora_state(model)
    if not state:
        raise ValueError("the model has no adapters")
    first = next(m for _, p, n in _targets(model) if isinstance(m := getattr(p, n), LoRALinear))
    rank = first.lora_a.shape[0]
    meta = {"rank": str(rank), "alpha": str(first.scale * rank), "kind": KIND}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous().cpu() for k, v in state.items()}, str(path), metadata=meta)
    if record is not None:
        path.with_suffix(".json").write_text(json.dumps({"kind": KIND, "file": path.name, "rank": rank,
                                                         "alpha": first.scale * rank, **record}, indent=2) + "\n")
    return path


def load_lora(model: MSAModel, path: Path, rank: int, alpha: float) -> None:
    """Set the adapters `add_lora` put on `model` to those of an adapter file (to go on training
    it); the file must have the same rank and alpha and cover every adapted layer."""
    tensors, scale = read_adapter(path)
    if abs(scale - alpha / rank) > 1e-6:
        raise ValueError(f"{path}: alpha/rank {scale:g}, the adapters here have {alpha / rank:g}")
    own = {key: lin for key, parent, name in _targets(model) if isinstance(lin := getattr(parent, name), LoRALinear)}
    for key, lin in own.items():
        a, b = tensors.get(f"{key}.lora_a"), tensors.get(f"{key}.lora_b")
        if a is None or b is None or a.shape != lin.lora_a.shape or b.shape != lin.lora_b.shape:
            raise ValueError(f"{path}: no adapter of the right shape for {key}")
        with torch.no_grad():
            lin.lora_a.copy_(a)
            lin.lora_b.copy_(b)


def read_adapter(path: Path) -> tuple[dict[str, torch.Tensor], float]:
    """The adapter tensors (fp32) and their scale alpha / rank."""
    with safe_open(str(path), framework="pt") as sf:
        meta = sf.metadata() or {}
        tensors = {k: sf.get_tensor(k).float() for k in sf.keys()}
    if "rank" not in meta or "alpha" not in meta:
        raise ValueError(f"{path}: not an adapter file (no rank/alpha metadata)")
    return tensors, float(meta["alpha"]) / int(meta["rank"])


def merge_into_state(state: dict[str, torch.Tensor], adapter: Path) -> int:
    """W ← W + scale · B A for every adapted weight in a model state dict (keys without the
    `model.` prefix), in fp32. Returns the number of weights changed."""
    tensors, scale = read_adapter(adapter)
    n = 0
    for key in sorted({k.rsplit(".", 1)[0] for k in tensors}):
        wkey = f"{key}.weight"
        if wkey not in state:
            raise ValueError(f"{adapter}: adapts {key}, which the model does not have")
        a, b = tensors[f"{key}.lora_a"], tensors[f"{key}.lora_b"]
        w = state[wkey]
        if b.shape[0] != w.shape[0] or a.shape[1] != w.shape[1]:
            raise ValueError(f"{adapter}: {key} has shape {tuple(b.shape[:1]) + tuple(a.shape[1:])}, the model {tuple(w.shape)}")
        state[wkey] = (w.float() + scale * (b @ a)).to(w.dtype)
        n += 1
    return n


# ---- which backbone an adapter belongs to -------------------------------------------------------


def backbone_id(model_dir: Path) -> str:
    """A stable identity of a backbone: the source GGUF's sha256 for a converted GGUF (the same on
    every machine), else the sha256 of its safetensors files."""
    src = Path(model_dir) / "source.json"
    if src.is_file():
        digest = json.loads(src.read_text()).get("sha256")
        if digest:
            return f"gguf-sha256:{digest}"
    h = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return f"safetensors-sha256:{h.hexdigest()}"


def backbone_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))


def find_adapter(model_dir: Path, search: Path = TRAINED_DIR) -> Path | None:
    """The shipped reader adapter trained for this backbone, if any (matched by `backbone_id`
    recorded in the adapter's JSON record)."""
    if not search.is_dir():
        return None
    records = sorted(search.glob("*.json"))
    if not records:
        return None
    ident = None
    for rec_path in records:
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("kind") != KIND:
            continue
        if rec.get("backbone") is None or (not (Path(model_dir) / "source.json").is_file()
                                           and rec.get("backbone_bytes") not in (None, backbone_bytes(model_dir))):
            continue  # another model: no need to hash its weights
        ident = ident or backbone_id(model_dir)
        f = search / rec.get("file", rec_path.with_suffix(".safetensors").name)
        if rec.get("backbone") == ident and f.is_file():
            return f
    return None
