"""Routes for blocks. Secret fields go in encrypted and never come back out in clear."""

from __future__ import annotations

from fastapi import APIRouter, Request

from push_pools import blocks as block_rules
from push_pools.api.deps import SessionDep, StoreRoute
from push_pools.models import BlockCreate, BlockOut, BlockTypeField, BlockTypeOut
from push_pools.store import blocks as block_store

router = APIRouter(tags=["blocks"], route_class=StoreRoute)


def secret_box(request: Request) -> block_rules.SecretBox:
    box = getattr(request.app.state, "secret_box", None)
    if box is None:
        box = request.app.state.secret_box = block_rules.SecretBox.from_environment()
    return box


@router.get("/block_types", response_model=list[BlockTypeOut])
def list_block_types() -> list[BlockTypeOut]:
    return [
        BlockTypeOut(
            slug=t.slug,
            description=t.description,
            fields=[
                BlockTypeField(
                    name=f.name,
                    description=f.description,
                    secret=f.secret,
                    required=f.required,
                    kind=f.kind,
                )
                for f in t.fields
            ],
        )
        for t in block_rules.block_types()
    ]


@router.post("/blocks", status_code=201, response_model=BlockOut)
def create_block(body: BlockCreate, session: SessionDep, request: Request) -> BlockOut:
    return block_store.block_out(block_store.create_block(session, body, secret_box(request)))


@router.get("/blocks", response_model=list[BlockOut])
def list_blocks(session: SessionDep) -> list[BlockOut]:
    return [block_store.block_out(b) for b in block_store.list_blocks(session)]


@router.get("/blocks/{name}", response_model=BlockOut)
def get_block(name: str, session: SessionDep) -> BlockOut:
    return block_store.block_out(block_store.get_block(session, name))


@router.delete("/blocks/{name}", status_code=204)
def delete_block(name: str, session: SessionDep) -> None:
    block_store.delete_block(session, name)
