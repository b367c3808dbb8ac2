"""Block pages: the list and create. Secret fields are write-only: a password input that is
never filled in, and the list shows only which secrets are set, never their values."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from push_pools import blocks as block_rules
from push_pools.api import blocks as block_api
from push_pools.api.deps import SessionDep, StoreRoute
from push_pools.errors import PushPoolsError
from push_pools.models import BlockCreate
from push_pools.store import blocks as block_store
from push_pools.ui.forms import FormDep, field_errors

router = APIRouter(route_class=StoreRoute)


def _page(
    request: Request,
    session: SessionDep,
    block_type: str | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    rows = []
    for block in block_store.list_blocks(session):
        secrets = set(block_store.block_secret_names(block))
        shown = block_store.block_out(block).data
        rows.append(
            {
                "name": block.name,
                "type": block.block_type,
                "fields": {k: v for k, v in shown.items() if k not in secrets},
                "secrets": sorted(secrets),
                "updated": block.updated,
            }
        )
    types = block_rules.block_types()
    chosen = next((t for t in types if t.slug == block_type), None)
    # A posted form comes back without its secret values: they are never sent to the page.
    secret_names = {f.name for f in chosen.fields if f.secret} if chosen else set()
    kept = {k: v for k, v in values.items() if k.removeprefix("field.") not in secret_names}
    return page(
        request,
        "blocks.html",
        status=status,
        blocks=rows,
        types=types,
        chosen=chosen,
        values=kept,
        errors=errors,
    )


@router.get("/blocks")
def blocks_page(request: Request, session: SessionDep, type: str | None = None) -> HTMLResponse:
    return _page(request, session, type, {}, {})


@router.post("/blocks", response_model=None)
def create_block(request: Request, form: FormDep, session: SessionDep) -> Response:
    block_type = form.get("block_type", "")
    data = {
        key.removeprefix("field."): value
        for key, value in form.items()
        if key.startswith("field.") and value != ""
    }
    try:
        body = BlockCreate(name=form.get("name", ""), block_type=block_type, data=data)
        block_api.create_block(body, session, request)
    except ValidationError as exc:
        session.rollback()
        return _page(request, session, block_type, form, field_errors(exc), status=422)
    except PushPoolsError as exc:
        session.rollback()
        field = next((f"field.{k}" for k in data if f"'{k}'" in exc.message), "name")
        return _page(request, session, block_type, form, {field: exc.message}, exc.status_code)
    return RedirectResponse("/blocks", status_code=303)
