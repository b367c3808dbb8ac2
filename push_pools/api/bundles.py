"""Routes for code bundles (the project code `deploy` uploads), the server's own wheel and the
bootstrap that installs it in a stock image."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Response
from fastapi.concurrency import run_in_threadpool

from push_pools import bundle_storage
from push_pools.api.deps import SessionDep, StoreDep, StoreRoute
from push_pools.errors import InvalidInput, NotFound
from push_pools.store import bundles as bundle_store
from push_pools.store import pools as pool_store
from push_pools.store.db import Store

router = APIRouter(tags=["bundles"], route_class=StoreRoute)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
BUNDLE_MEDIA_TYPE = "application/gzip"
WHEEL_MEDIA_TYPE = "application/zip"
SCRIPT_MEDIA_TYPE = "text/x-python"


def _check_name(sha256: str) -> None:
    if not _SHA256.match(sha256):
        raise InvalidInput(
            f"{sha256!r} is not a bundle id: a bundle is named by the sha256 of its bytes, "
            "64 lowercase hex digits"
        )


@router.put("/bundles/{sha256}", status_code=201)
def put_bundle(
    sha256: str,
    store: StoreDep,
    response: Response,
    data: Annotated[bytes, Body(media_type="application/octet-stream")],
    work_pool_name: str | None = None,
) -> dict[str, object]:
    """Store a bundle under the sha256 of its bytes. Idempotent: 200 when it is there already.

    With `work_pool_name`, a pool whose `bundle_storage` names a bucket gets it stored there
    (nothing is stored when the server cannot write it), else the store keeps it. The request
    body limit (PUSH_POOLS_MAX_REQUEST_BYTES) is the bundle size limit."""
    _check_name(sha256)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise InvalidInput(
            f"the uploaded bytes have sha256 {actual}, not {sha256}: the upload was changed or "
            "cut short; send it again"
        )
    target = _pool_bucket(store, work_pool_name)
    url = None
    if target is not None:
        location, access = target
        if not _in_place(store, sha256, target):
            # Written before the row and with no session open (this handler takes none): a
            # bucket that refuses it leaves nothing behind, and a slow upload holds no turn
            # of the store's writers.
            url = bundle_storage.write(location, sha256, data, access)
        else:
            url = location.url(sha256)
    with store.session() as session:
        changed = bundle_store.save(session, sha256, data, location=url)
    if not changed:
        response.status_code = 200
    return {"sha256": sha256, "size": len(data), **({"location": url} if url else {})}


def _pool_bucket(
    store: Store, pool_name: str | None
) -> tuple[bundle_storage.BucketLocation, bundle_storage.BucketAccess] | None:
    """The pool's bucket and the pool's own access to it, or None (the store keeps it)."""
    if not pool_name:
        return None
    with store.read_session() as read:
        pool = pool_store.get_pool(read, pool_name)
        location = bundle_storage.pool_location(pool.base_job_template)
        if location is None:
            return None
        return location, bundle_storage.access_for_pool(read, pool)


def _in_place(
    store: Store,
    sha256: str,
    target: tuple[bundle_storage.BucketLocation, bundle_storage.BucketAccess] | None,
) -> bool:
    """Whether the bundle is where the pool's runs will read it: its bucket's object (which
    may have been deleted with the bucket since), or the store for a pool without one."""
    with store.read_session() as read:
        known, url = bundle_store.location(read, sha256)
    if not known:
        return False
    if target is None:
        return url is None
    location, access = target
    return url == location.url(sha256) and bundle_storage.exists(url, access)


@router.head("/bundles/{sha256}")
def bundle_exists(sha256: str, store: StoreDep, work_pool_name: str | None = None) -> Response:
    """200 when the server has the bundle (so `deploy` need not upload it), else 404. With
    `work_pool_name`: only where that pool's runs will read it (its bucket, or the store)."""
    _check_name(sha256)
    if work_pool_name is not None:
        present = _in_place(store, sha256, _pool_bucket(store, work_pool_name))
    else:
        with store.read_session() as read:
            present = bundle_store.exists(read, sha256) is not None
    return Response(status_code=200 if present else 404)


@router.get("/bundles/{sha256}", response_class=Response)
def get_bundle(sha256: str, session: SessionDep) -> Response:
    _check_name(sha256)
    data = bundle_store.load(session, sha256)
    if data is None:
        raise NotFound(f"no code bundle {sha256} on this server; deploy the project again")
    if isinstance(data, str):
        access = bundle_storage.access_for_url(session, data)
        data = bundle_storage.read(data, access)
    return Response(content=data, media_type=BUNDLE_MEDIA_TYPE)


@router.get("/wheel", response_class=Response)
async def get_wheel() -> Response:
    """The wheel of the push-pools this server runs, for images that do not have it."""
    from push_pools.wheel import server_wheel

    wheel = await run_in_threadpool(server_wheel)
    return Response(
        content=wheel.data,
        media_type=WHEEL_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{wheel.filename}"',
            "X-Wheel-Filename": wheel.filename,
            "X-Wheel-Sha256": wheel.sha256,
        },
    )


@router.get("/bootstrap", response_class=Response)
def get_bootstrap() -> Response:
    """The stdlib-only bootstrap script that the stock image's default command downloads and
    runs (push_pools/deploy/stock_image.py): the command stays short and readable."""
    from push_pools import bootstrap

    return Response(content=Path(bootstrap.__file__).read_bytes(), media_type=SCRIPT_MEDIA_TYPE)
