"""Stored blocks: public fields in clear, secret fields encrypted with the server's key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools import blocks as block_rules
from push_pools.errors import AlreadyExists, InvalidInput, NotFound, PushPoolsError
from push_pools.models import BlockCreate, BlockOut
from push_pools.store.tables import Block, utcnow

log = logging.getLogger("push_pools.server")


def block_out(block: Block) -> BlockOut:
    """The block as the API shows it: secret fields masked, never decrypted."""
    block_type = block_rules.get_block_type(block.block_type)
    data = {k: v for k, v in block.data.items() if k != "_secret_fields"}
    for name in block_secret_names(block):
        data[name] = block_rules.MASK
    return BlockOut(
        id=block.id,
        name=block.name,
        block_type=block_type.slug,
        data=block_rules.mask(block_type, data),
        created=block.created,
        updated=block.updated,
    )


def block_secret_names(block: Block) -> list[str]:
    # Which secret fields are set is stored in clear (names only), so masking needs no key.
    return [str(n) for n in (block.data or {}).get("_secret_fields", [])]


def create_block(session: Session, body: BlockCreate, box: block_rules.SecretBox) -> Block:
    block_type = block_rules.get_block_type(body.block_type)
    data = block_rules.validate_block_data(block_type, body.data)
    public, secret = block_rules.split_secret_fields(block_type, data)
    existing = session.scalar(select(Block).where(Block.name == body.name))
    if existing is not None and not body.overwrite:
        raise AlreadyExists(
            f"block '{body.name}' already exists; delete it first or pass --overwrite"
        )
    block = existing or Block(name=body.name)
    block.block_type = block_type.slug
    block.data = {**public, "_secret_fields": sorted(secret)}
    block.encrypted_secrets = box.encrypt(secret) if secret else None
    block.updated = utcnow()
    if existing is None:
        session.add(block)
    session.flush()
    return block


def get_block(session: Session, name: str) -> Block:
    block = session.scalar(select(Block).where(Block.name == name))
    if block is None:
        raise NotFound(f"block '{name}' not found; `push-pools block ls` lists the blocks")
    return block


def list_blocks(session: Session) -> list[Block]:
    return list(session.scalars(select(Block).order_by(Block.name)))


def delete_block(session: Session, name: str) -> None:
    session.delete(get_block(session, name))
    session.flush()


def resolve_block(
    session: Session, box: block_rules.SecretBox, block_type: str, name: str
) -> dict[str, Any]:
    """The block's full data with secrets decrypted. Only for building a run's configuration."""
    block = get_block(session, name)
    if block.block_type != block_type:
        raise InvalidInput(
            f"block '{name}' is of type '{block.block_type}', but a '{block_type}' block is needed"
        )
    data = {k: v for k, v in block.data.items() if k != "_secret_fields"}
    if block.encrypted_secrets:
        data.update(box.decrypt(block.encrypted_secrets))
    return data


def block_resolver(session: Session, box: Any) -> Callable[[str, str], dict[str, Any]]:
    """`resolve(block_type, name)` for templates.render_job_configuration. `box`: a SecretBox,
    or the PushPoolsError saying why there is none (raised only if a block is needed)."""

    def resolve(block_type: str, block_name: str) -> dict[str, Any]:
        try:
            if isinstance(box, PushPoolsError):
                raise box
            return resolve_block(session, box, block_type, block_name)
        except PushPoolsError as exc:
            raise PushPoolsError(
                f"cannot use credentials block '{block_name}' ({block_type}): {exc.message}"
            ) from exc

    return resolve


def check_encryption_key(session: Session) -> None:
    """At server start: refuse a key that cannot read the stored secrets, and never let a new
    key be made over them (it would leave every block unreadable and runs crashing later)."""
    rows = session.execute(
        select(Block.name, Block.encrypted_secrets).where(Block.encrypted_secrets.is_not(None))
    ).all()
    if not rows:
        return
    source, path = block_rules.SecretBox.key_source()
    how = (
        "Restore the key file from your backup, or set PUSH_POOLS_ENCRYPTION_KEY to the key the "
        "blocks were saved with (the server never makes a new key while encrypted blocks exist)"
    )
    names = ", ".join(f"'{name}'" for name, _ in rows[:5]) + (" ..." if len(rows) > 5 else "")
    if path is not None and not path.exists():
        raise InvalidInput(
            f"the store holds {len(rows)} block(s) with encrypted secrets ({names}) but the "
            f"encryption key file {path} is missing. {how}."
        )
    box = block_rules.SecretBox.from_environment(create=False)
    unreadable = [name for name, token in rows if not box.can_decrypt(token or "")]
    if len(unreadable) == len(rows):
        raise InvalidInput(
            f"{source} does not decrypt the {len(rows)} stored block(s) with secrets ({names}): "
            f"it is not the key they were saved with. {how}."
        )
    if unreadable:
        log.warning(
            "%s does not decrypt %d block(s): %s; save them again with `push-pools block create "
            "--overwrite`",
            source,
            len(unreadable),
            ", ".join(unreadable),
        )
