"""One place for state: MSA_HOME (else the platform's user data dir), stores and caches."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def msa_home() -> Path:
    env = os.environ.get("MSA_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("msa", appauthor=False))


def model_cache_dir() -> Path:
    return msa_home() / "models"


def store_path(store: str | Path | None = None) -> Path:
    """--store, else MSA_STORE, else MSA_HOME/stores/default."""
    if store:
        return Path(store).expanduser()
    env = os.environ.get("MSA_STORE")
    if env:
        return Path(env).expanduser()
    return msa_home() / "stores" / "default"


def model_spec(model: str | Path | None = None) -> str | None:
    """--model, else MSA_MODEL, else None (the default backbone)."""
    return str(model) if model else os.environ.get("MSA_MODEL") or None
