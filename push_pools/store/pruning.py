"""Forgetting what the store no longer needs: old write receipts, pool tombstones and code
bundles no deployment references.

Run from the server's scheduler loop. Each pass is bounded and uses short transactions, and
takes the write lock only when it has something to delete, so an idle store is only read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, delete, exists, select
from sqlalchemy.orm import Session

from push_pools import pool_types
from push_pools.states import FINAL, StateType
from push_pools.store.bundles import bundle_of_steps
from push_pools.store.db import Store

if TYPE_CHECKING:
    from push_pools.bundle_storage import BucketAccess
from push_pools.store.tables import (
    CodeBundle,
    Deployment,
    FlowRun,
    WorkPool,
    WriteReceipt,
    utcnow,
)

# A client retries a write within minutes (the engine gives up after far less); a receipt is
# kept much longer than that, so that a retry is recognised even after a long server outage.
RECEIPT_WINDOW = timedelta(hours=6)
RECEIPTS_PER_PASS = 2000
# A deleted pool's name keeps answering "was deleted" (not "not found") this long at least, so
# that its workers and users are told plainly what happened.
TOMBSTONE_GRACE = timedelta(hours=1)
TOMBSTONES_PER_PASS = 50
# `deploy` uploads a bundle before it writes the deployment that references it: a bundle this
# young may be one whose deployment is on its way, so it stays.
BUNDLE_GRACE = timedelta(hours=1)
BUNDLES_PER_PASS = 50

log = logging.getLogger(__name__)

_UNFINISHED = [s.value for s in StateType if s not in FINAL]


@dataclass(frozen=True)
class Pruned:
    receipts: int
    pools: int
    bundles: int = 0


def prune(store: Store, now: datetime | None = None) -> Pruned:
    """One bounded pass: receipts older than RECEIPT_WINDOW, tombstones nothing needs, and
    code bundles no deployment references any more."""
    now = now or utcnow()
    return Pruned(
        receipts=prune_receipts(store, now),
        pools=drop_tombstones(store, now),
        bundles=drop_bundles(store, now),
    )


def prune_receipts(store: Store, now: datetime) -> int:
    """Delete up to RECEIPTS_PER_PASS receipts made before `now - RECEIPT_WINDOW`.

    Receipts are inserted in time order, so the oldest ones lead the primary key: reading the
    first rows by id finds them without an index on the time, and costs the same however many
    receipts the store holds."""
    cutoff = now - RECEIPT_WINDOW
    with store.read_session() as session:
        rows = session.execute(
            select(WriteReceipt.id, WriteReceipt.created)
            .order_by(WriteReceipt.id)
            .limit(RECEIPTS_PER_PASS)
        ).all()
    # A receipt from a server whose clock ran ahead may sit among older ones: skip it for now.
    old = [receipt_id for receipt_id, created in rows if created < cutoff]
    if not old:
        return 0
    with store.session() as session:
        session.execute(
            delete(WriteReceipt).where(WriteReceipt.id.in_(old), WriteReceipt.created < cutoff)
        )
    return len(old)


def _tombstone_unneeded(now: datetime) -> ColumnElement[bool]:
    """A pool deleted TOMBSTONE_GRACE ago or more that nothing needs any more: no deployment
    still says it was deployed there (it would turn into a served deployment), no run is
    unfinished, and no run of a push pool waits for the dispatcher to stop and clean up its
    infrastructure (it reads the pool's type, template and credentials for that)."""
    push_types = [name for name in pool_types.names() if pool_types.get(name).is_push]
    run_of_pool = FlowRun.work_pool_id == WorkPool.id
    return and_(
        WorkPool.deleted.is_(True),
        WorkPool.updated < now - TOMBSTONE_GRACE,
        ~exists().where(Deployment.work_pool_id == WorkPool.id),
        ~exists().where(run_of_pool, FlowRun.state_type.in_(_UNFINISHED)),
        ~and_(
            WorkPool.type.in_(push_types),
            exists().where(
                run_of_pool,
                FlowRun.infrastructure_released.is_(False),
                FlowRun.infrastructure_id.is_not(None),
            ),
        ),
    )


def drop_tombstones(store: Store, now: datetime) -> int:
    """Delete up to TOMBSTONES_PER_PASS tombstoned pools nothing needs any more (their queues
    and workers go with them). Their finished runs stay, without a pool name."""
    with store.read_session() as session:
        ids = list(
            session.scalars(
                select(WorkPool.id)
                .where(_tombstone_unneeded(now))
                .order_by(WorkPool.updated)
                .limit(TOMBSTONES_PER_PASS)
            )
        )
    if not ids:
        return 0
    with store.session() as session:
        # Checked again under the write lock: a run read as finished may have moved since.
        result = session.execute(
            delete(WorkPool)
            .where(WorkPool.id.in_(ids), _tombstone_unneeded(now))
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


def _referenced_bundles(session: Session) -> set[str]:
    """Every bundle some deployment's pull steps name. A run can download only its own
    deployment's current bundle (api/run_scope.py), so no unfinished run needs any other one."""
    referenced: set[str] = set()
    for steps in session.scalars(select(Deployment.pull_steps)):
        referenced |= bundle_of_steps(steps)
    return referenced


def drop_bundles(store: Store, now: datetime) -> int:
    """Delete up to BUNDLES_PER_PASS code bundles older than BUNDLE_GRACE that no deployment
    references, and the bucket objects of those a pool's bucket held."""
    cutoff = now - BUNDLE_GRACE
    with store.read_session() as session:
        old = set(session.scalars(select(CodeBundle.sha256).where(CodeBundle.created < cutoff)))
        if not old:
            return 0  # the usual case: only the cheap query above
        unused = sorted(old - _referenced_bundles(session))[:BUNDLES_PER_PASS]
    if not unused:
        return 0
    with store.session() as session:
        # Checked again under the write lock: a deploy may have named one of them since.
        unused = sorted(set(unused) - _referenced_bundles(session))
        locations = [
            location
            for location in session.scalars(
                select(CodeBundle.location).where(
                    CodeBundle.sha256.in_(unused), CodeBundle.location.is_not(None)
                )
            )
            if location
        ]
        accesses = _bucket_accesses(session, locations)
        session.execute(
            delete(CodeBundle)
            .where(CodeBundle.sha256.in_(unused))
            .execution_options(synchronize_session=False)
        )
    # After the rows: a bucket object whose row is gone is only wasted space, a row whose
    # object is gone would be a bundle that cannot be read.
    _delete_bucket_objects(locations, accesses)
    return len(unused)


def _bucket_accesses(session: Session, locations: list[str]) -> list[BucketAccess]:
    """Each object's access (its pool's credentials), read while the session is open."""
    from push_pools import bundle_storage

    accesses = []
    for location in locations:
        try:
            accesses.append(bundle_storage.access_for_url(session, location))
        except Exception as exc:  # a pool whose block is unusable: try the default chain
            log.warning("code bundle %s: %s; deleting it as the server", location, exc)
            accesses.append(bundle_storage.BucketAccess())
    return accesses


def _delete_bucket_objects(locations: list[str], accesses: list[BucketAccess]) -> None:
    """Delete the objects; after a bucket's first failure, skip the rest of that bucket's.

    This runs in the scheduler's loop: an unreachable bucket costs one call's timeout per pass,
    not one per object. What is skipped stays in the bucket (its rows are gone: wasted space,
    never a bundle that cannot be read)."""
    from push_pools import bundle_storage

    failed: set[str] = set()
    for location, access in zip(locations, accesses, strict=True):
        bucket = str(bundle_storage.parse(location).bucket)
        if bucket in failed:
            continue
        try:
            bundle_storage.delete(location, access)
        except Exception as exc:  # one bucket's trouble must not stop the pass
            failed.add(bucket)
            log.warning(
                "could not delete the pruned code bundle %s: %s; this pass leaves the other "
                "pruned bundles of that bucket in it",
                location,
                exc,
            )
