"""Bearer tokens of `msa serve`, each scoped to collections, kept in the store's database.

A token reads `msa_<id>_<secret>`: the id finds its row, the secret is checked against the row's
salted digest (HMAC-SHA256) in constant time. Only the digest is stored: a lost token cannot be
shown again, only revoked and replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets

from sqlalchemy import func, select

from msa_agent.errors import BadInput

from .schema import TokenRow, utcnow
from .store import Store

PREFIX = "msa_"
_COLLECTION = re.compile(r"^[\w.\-]{1,128}$")
_TOKEN = re.compile(r"^msa_(\d{1,12})_([A-Za-z0-9_\-]{20,128})$")


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _as_dict(r: TokenRow) -> dict:
    return {"id": r.id, "collections": json.loads(r.collections), "label": r.label, "created_at": r.created_at,
            "revoked_at": r.revoked_at, "active": r.revoked_at is None}


def create_token(store: Store, collections: list[str], label: str = "") -> tuple[dict, str]:
    """A new token granting `collections`: (its row as a dict, the token itself, shown once)."""
    colls = list(dict.fromkeys(c.strip() for c in collections))
    if not colls:
        raise BadInput("a token needs at least one --collection")
    for c in colls:
        if not _COLLECTION.match(c):
            raise BadInput(f"{c!r}: not a collection name (letters, digits, '_', '-', '.')")
    salt, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
    with store.session() as s, s.begin():
        row = TokenRow(salt=salt, digest=_digest(salt, secret), collections=json.dumps(colls), label=label,
                       created_at=utcnow(), revoked_at=None)
        s.add(row)
        s.flush()
        info = _as_dict(row)
    return info, f"{PREFIX}{info['id']}_{secret}"


def list_tokens(store: Store) -> list[dict]:
    """Every token, revoked ones too, without secrets."""
    with store.session() as s:
        return [_as_dict(r) for r in s.scalars(select(TokenRow).order_by(TokenRow.id))]


def revoke_token(store: Store, token_id: int) -> dict:
    """Revoke a token at once: the next request carrying it is refused."""
    with store.session() as s, s.begin():
        row = s.get(TokenRow, token_id)
        if row is None:
            raise BadInput(f"no token {token_id} (see msa token list)")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _as_dict(row)


def active_tokens(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(TokenRow).where(TokenRow.revoked_at.is_(None))) or 0


def check_token(store: Store, token: str) -> list[str] | None:
    """The collections a presented token grants, or None when it is malformed, unknown or revoked."""
    m = _TOKEN.match(token.strip())
    if m is None:
        return None
    with store.session() as s:
        row = s.get(TokenRow, int(m.group(1)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.digest, _digest(row.salt, m.group(2))):
        return None
    return json.loads(row.collections)
