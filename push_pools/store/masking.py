"""Masking, the second line behind credential slots: no stored block secret is kept in clear
in what runs send back (log lines, state messages, crash tails the dispatcher copies).

Every text a run reports passes through here before it is written, so even a secret that
reaches a flow by a way we did not foresee is stored as `********`. The secrets are those of
every stored block (decrypted once and kept until the blocks change) plus run tokens.
"""

from __future__ import annotations

import re
import threading
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from push_pools import blocks as block_rules
from push_pools.errors import PushPoolsError
from push_pools.store.tables import Block

__all__ = ["mask_text", "mask_texts"]

# A run token, whoever printed it (store/run_tokens.py makes them "pprun_" + 43 characters).
_RUN_TOKEN = re.compile(r"pprun_[A-Za-z0-9_\-]{20,}")


class _Secrets:
    """The secret strings of one database's blocks, refreshed when the blocks change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[int, datetime | None] | None = None
        self._strings: list[str] = []

    def current(self, session: Session) -> list[str]:
        count, updated = session.execute(
            select(func.count(Block.id), func.max(Block.updated))
        ).one()
        version = (int(count), updated)
        with self._lock:
            if version != self._version:
                self._strings = _decrypt_all(session)
                self._version = version
            return self._strings


def _decrypt_all(session: Session) -> list[str]:
    found: list[str] = []
    box: block_rules.SecretBox | None = None
    for block in session.scalars(select(Block).where(Block.encrypted_secrets.is_not(None))):
        try:
            box = box or block_rules.SecretBox.from_environment(create=False)
            secret = box.decrypt(block.encrypted_secrets or "")
            block_type = block_rules.get_block_type(block.block_type)
        except PushPoolsError:
            continue  # undecryptable here: nothing of it can reach a run through this server
        found.extend(block_rules.secret_strings(block_type, secret))
    return found


# One cache per database engine (tests and benchmarks open several stores in one process).
_CACHES: weakref.WeakKeyDictionary[Any, _Secrets] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _secrets(session: Session) -> list[str]:
    # Once per transaction: a dispatcher recording a batch of 200 states asks once.
    cached = session.info.get("push_pools_mask_secrets")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    engine = session.get_bind()
    with _CACHES_LOCK:
        cache = _CACHES.get(engine)
        if cache is None:
            cache = _CACHES[engine] = _Secrets()
    secrets = session.info["push_pools_mask_secrets"] = cache.current(session)
    return secrets


def mask_texts(session: Session, texts: list[str]) -> list[str]:
    """`texts` with every stored secret and every run token replaced by `********`."""
    secrets = _secrets(session)
    return [
        _RUN_TOKEN.sub(block_rules.MASK, block_rules.mask_in_text(text, secrets)) for text in texts
    ]


def mask_text(session: Session, text: str | None) -> str | None:
    return text if not text else mask_texts(session, [text])[0]
