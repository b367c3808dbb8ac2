"""The dispatcher's part in deleting deployments: have each retired deployment's pool executor
forget what it keeps per deployment (Cloud Run jobs), once, after the deployment's last run.

Three short steps per tick, as in the rest of the dispatcher: read and take due notes in one
transaction (rendering what the executor needs), call the executors with none open, write each
outcome in another. Notes are written by store/deletes.py with the delete itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from push_pools import pool_types, templates
from push_pools.errors import PushPoolsError
from push_pools.executors.base import Retirement
from push_pools.store import retirements
from push_pools.store.blocks import block_resolver
from push_pools.store.db import Store
from push_pools.store.tables import WorkPool, utcnow

log = logging.getLogger("push_pools.dispatch")

BATCH = 20
# How long a dispatcher holds a note it is working on; after that another may take it over
# (the first one died mid-call). Forgetting is idempotent, so an overlap does no harm.
LEASE = timedelta(minutes=2)
# A note whose runs have not all ended is looked at again after this.
RUNS_RECHECK = timedelta(seconds=2)


@dataclass(frozen=True)
class _Taken:
    note_id: str
    pool_type: str
    retirement: Retirement | None
    # Why there is nothing to call the executor with (the pool is gone, its template cannot
    # be rendered): recorded as a failure, or as final when it cannot get better.
    error: str | None = None
    final: bool = False


class Retirer:
    def __init__(
        self,
        store: Store,
        executor: Callable[[str], Any],
        secret_box: Callable[[], Any],
    ) -> None:
        self.store = store
        self._executor = executor
        self._secret_box = secret_box

    def tick(self) -> int:
        """Forget the retired deployments that are due; how many calls were made."""
        now = utcnow()
        with self.store.read_session() as session:
            due = retirements.due(session, now, BATCH)
            if not due:
                return 0  # the usual case, without taking the write lock
            types = set(
                session.scalars(
                    select(WorkPool.type)
                    .where(WorkPool.id.in_([n.work_pool_id for n in due]))
                    .distinct()
                )
            )
        # Made outside any transaction: making one may touch the disk or build clients.
        executors: dict[str, Any] = {}
        for name in sorted(types):
            try:
                executors[name] = self._executor(name)
            except PushPoolsError as exc:  # a type no longer installed: its notes wait for it
                log.warning("no executor for pool type %s: %s", name, exc.message)
        box = self._secret_box()
        with self.store.session() as session:
            taken = [
                item
                for note in retirements.due(session, utcnow(), BATCH)
                if (item := self._take(session, note, executors, box)) is not None
            ]
        outcomes: list[tuple[_Taken, str | None]] = []
        for item in taken:
            if item.retirement is None:
                outcomes.append((item, item.error))
                continue
            try:
                executors[item.pool_type].forget_deployment(item.retirement)
                outcomes.append((item, None))
            except PushPoolsError as exc:
                outcomes.append((item, exc.message))
            except Exception as exc:  # an SDK error we do not know: kept as the note's error
                outcomes.append((item, f"{type(exc).__name__}: {exc}"))
        with self.store.session() as session:
            for item, error in outcomes:
                if error is None or item.final:
                    retirements.finish(session, item.note_id, error)
                else:
                    log.warning(
                        "could not remove the infrastructure of deleted deployment %s: %s",
                        item.retirement.deployment_id if item.retirement else item.note_id,
                        error,
                    )
                    retirements.failed(session, item.note_id, error)
        return len(outcomes)

    def _take(self, session: Any, note: Any, executors: dict[str, Any], box: Any) -> _Taken | None:
        """The note, held under a lease and ready for its executor; None when it is not ready
        (its runs have not all ended) or another dispatcher holds it."""
        now = utcnow()
        if not retirements.runs_settled(session, note.run_ids):
            retirements.postpone(session, note, now + RUNS_RECHECK)
            return None
        if not retirements.postpone(session, note, now + LEASE):
            return None
        pool = session.get(WorkPool, note.work_pool_id)
        if pool is None:
            return _Taken(note.id, "", None, "its work pool no longer exists", final=True)
        if pool.type not in executors:
            return _Taken(note.id, pool.type, None, f"no executor for pool type {pool.type}")
        try:
            pool_type = pool_types.get(pool.type)
            values = templates.merge_job_variables(
                templates.default_values(pool.base_job_template), note.job_variables, {}
            )
            configuration = templates.render_job_configuration(
                pool.base_job_template,
                values,
                block_resolver(session, box),
                credential_slots=pool_type.credential_slots,
                pool_type=pool_type.name,
            )
        except PushPoolsError as exc:
            # A credentials block deleted or a key missing may come back: try again later.
            return _Taken(note.id, pool.type, None, exc.message)
        return _Taken(
            note.id,
            pool.type,
            Retirement(
                deployment_id=note.deployment_id,
                pool_name=note.pool_name,
                job_configuration=configuration,
            ),
        )
