"""The push loop: the server claims due runs of push and managed pools and starts them.

One `Dispatcher` serves every push pool type; a type's executor comes from the pool-type
registry, so adding an infrastructure never touches this module. Several dispatchers (servers)
may share one PostgreSQL store: claims use SKIP LOCKED, and infrastructure names derive from the
run id, so a submit retried by another dispatcher adopts what the first one started. Runs
whose infrastructure lives on one host's disk (managed sandboxes) are the exception: only that
host's dispatcher watches or resubmits them (push_pools/hosts.py for hosts that die).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from push_pools import pool_types, settings, templates
from push_pools.errors import PushPoolsError
from push_pools.executors import load_executor
from push_pools.executors.base import InfrastructureState, InfrastructureStatus, Submission
from push_pools.hosts import HostWatch
from push_pools.retire import Retirer
from push_pools.states import ACTIVE, FINAL, StateType
from push_pools.store import run_tokens
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import Deployment, FlowRun, WorkPool, utcnow
from push_pools.tracebacks import without_tracebacks

log = logging.getLogger("push_pools.dispatch")

DEFAULT_START_TIMEOUT_SECONDS = 600
STATUS_BATCH = 100
# A claimed run with no infrastructure after this long was left by a dispatcher that died
# between claim and submit; another dispatcher resubmits it (the name makes that safe).
DEFAULT_LEASE_SECONDS = 30.0
MAX_CHECK_INTERVAL = 30.0
RETIRE_INTERVAL = 1.0
ACTIVE_VALUES = [s.value for s in ACTIVE]


def default_dispatcher_name() -> str:
    return f"dispatcher-{socket.gethostname()}-{os.getpid()}"


def infrastructure_name(run: FlowRun) -> str:
    return f"pp-{run.id}-{run.run_count + 1}"


@dataclass
class _Check:
    """When to look at a submitted run again: often at first, then less and less."""

    due: float
    interval: float = 0.5


@dataclass(frozen=True)
class _Seen:
    """A submitted run as the watcher read it: what it acts on with no transaction open, and
    what the run must still be when the outcome is written back (compare-and-set)."""

    run_id: str
    pool: WorkPool
    infrastructure_id: str
    state: StateType
    state_timestamp: datetime
    keep_infrastructure: bool
    # Why the run is past its start timeout or maximum run time, if it is.
    deadline: str | None


class Dispatcher:
    """Claims, submits and watches the runs of push pools.

    No executor call (cloud API, sandbox files) happens while a database transaction is open:
    the loop reads in one short transaction, calls the executor with none open, and writes the
    outcome back in another, only if the run has not changed in between. On SQLite a
    transaction holds the whole database, so a slow cloud call inside one would hold up every
    API request.
    """

    def __init__(
        self,
        store: Store,
        *,
        api_url: str,
        name: str | None = None,
        batch_size: int = 200,
        submit_threads: int = 8,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        executor_factory: Callable[[str], Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        host_id: str | None = None,
        host_timeout_seconds: float | None = None,
    ) -> None:
        self.store = store
        # When each run's next check is due; injectable so that tests of the backoff do not
        # depend on how fast the machine loops.
        self._monotonic = monotonic
        self.api_url = api_url
        self.name = name or default_dispatcher_name()
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.host_id = host_id or settings.host_id()
        self.hosts = HostWatch(
            store,
            self.host_id,
            timeout=host_timeout_seconds or settings.host_timeout_seconds(),
            name=self.name,
            monotonic=monotonic,
        )
        self._executor_factory = executor_factory or (lambda pool_type: load_executor(pool_type))
        self._executors: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=submit_threads, thread_name_prefix="submit")
        self._checks: dict[str, _Check] = {}
        # Infrastructure ids whose executor knows the run's configuration (credentials,
        # region): those this dispatcher submitted, and those it introduced after a restart.
        self._introduced: set[str] = set()
        # Infrastructure ids this dispatcher already asked its executor to stop.
        self._stopping: set[str] = set()
        self._box: Any = None
        self.retirer = Retirer(store, self.executor, self._secret_box)
        self._next_retire = 0.0
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Dispatcher:
        self.hosts.start()
        self._thread = threading.Thread(target=self.run_forever, name="dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self.hosts.stop()
        self._pool.shutdown(wait=True)

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                submitted = self.dispatch_once()
                self.watch_once()
                self._retire_due()
            except Exception:  # one bad tick must not end dispatching; the next one retries
                log.exception("dispatch tick failed")
                submitted = 0
            if submitted:
                continue  # there may be more due runs: claim again at once
            # Woken by the API when a run is created; otherwise a short poll covers runs
            # created through another server sharing the store.
            self.wake.wait(self._next_wait())
            self.wake.clear()

    def _retire_due(self) -> None:
        """Forget deleted deployments' infrastructure; looked for at most once a second, as it
        is rare and never urgent."""
        if self._monotonic() < self._next_retire:
            return
        self._next_retire = self._monotonic() + RETIRE_INTERVAL
        self.retirer.tick()

    def _next_wait(self) -> float:
        if not self._checks:
            return 1.0
        soonest = min(c.due for c in self._checks.values()) - self._monotonic()
        return max(0.05, min(1.0, soonest))

    def executor(self, pool_type: str) -> Any:
        """The pool type's executor, made on first use; never call this inside a transaction
        (making one may touch the disk or build cloud clients)."""
        executor = self._executors.get(pool_type)
        if executor is None:
            executor = self._executors[pool_type] = self._executor_factory(pool_type)
        return executor

    def _executors_for(self, pools: list[WorkPool]) -> dict[str, Any]:
        return {t: self.executor(t) for t in sorted({p.type for p in pools})}

    def _owns(self, executor: Any, run: FlowRun) -> bool:
        """Whether this dispatcher watches and resubmits `run`: any server may for cloud
        infrastructure; for a run on a host's own disk (managed), only that host's server.
        Runs recorded before hosts were (no host id) stay anyone's, as they were."""
        return not _runs_on_host(executor) or run.host_id in (None, self.host_id)

    def _secret_box(self) -> Any:
        """The encryption key for credentials blocks, read from its file outside any
        transaction; kept once found. A PushPoolsError (no key) is returned, not raised: it
        matters only to a run whose template names a block."""
        from push_pools.blocks import SecretBox

        if self._box is None:
            try:
                self._box = SecretBox.from_environment(create=False)
            except PushPoolsError as exc:
                return exc
        return self._box

    # --- submitting ------------------------------------------------------------------------------

    def push_pools(self, session: Any) -> list[WorkPool]:
        push_types = [t for t in pool_types.names() if pool_types.get(t).is_push]
        return list(session.scalars(select(WorkPool).where(WorkPool.type.in_(push_types))))

    def dispatch_once(self) -> int:
        """Claim due runs of every push pool and submit them. Returns how many were submitted."""
        with self.store.session() as session:
            known = self.push_pools(session)
        if not known:
            return 0
        executors = self._executors_for(known)
        box = self._secret_box()
        jobs: list[tuple[str, str, Submission | None, str | None]] = []
        with self.store.session() as session:
            for pool in self.push_pools(session):
                executor = executors.get(pool.type)
                if executor is None:
                    continue  # a pool of a new type, made since the read above: next tick
                on_host = _runs_on_host(executor)
                claimed = run_store.claim_runs(
                    session, pool, claimer=self.name, limit=self.batch_size
                ).runs
                if on_host:
                    for run in claimed:
                        run.host_id = self.host_id
                claimed += self._take_over_stale_claims(
                    session, pool, on_host, {run.id for run in claimed}
                )
                # Read once for the batch, not once per run.
                deployments = _load_deployments(session, claimed)
                for run in claimed:
                    deployment = deployments.get(run.deployment_id or "")
                    submission, error = self._prepare(session, pool, run, box, deployment)
                    jobs.append((pool.type, run.id, submission, error))
        if not jobs:
            return 0
        futures = [
            (
                run_id,
                error,
                None
                if submission is None
                else self._pool.submit(executors[pool_type].submit, submission),
            )
            for pool_type, run_id, submission, error in jobs
        ]
        outcomes: list[tuple[str, str | None, str | None]] = []
        for run_id, error, future in futures:
            if future is None:
                outcomes.append((run_id, None, error))
                continue
            try:
                outcomes.append((run_id, future.result(), None))
            except PushPoolsError as exc:
                outcomes.append((run_id, None, exc.message))
            except Exception as exc:  # an SDK error we do not know: the run says what it was
                outcomes.append((run_id, None, f"{type(exc).__name__}: {exc}"))
        self._record_submissions(outcomes)
        return len(jobs)

    def _take_over_stale_claims(
        self, session: Any, pool: WorkPool, on_host: bool, just_claimed: set[str]
    ) -> list[FlowRun]:
        cutoff = utcnow() - self.lease
        query = select(FlowRun).where(
            FlowRun.work_pool_id == pool.id,
            FlowRun.state_type == StateType.PENDING.value,
            FlowRun.infrastructure_id.is_(None),
            FlowRun.state_timestamp < cutoff,
        )
        if on_host:
            # Another host's claim may have started a sandbox on that host's disk, where our
            # submit cannot find it to adopt: a second copy would run. Left to that host (or,
            # if it is gone, to its missing heartbeat).
            query = query.where(or_(FlowRun.host_id.is_(None), FlowRun.host_id == self.host_id))
        stale = list(session.scalars(query.limit(self.batch_size)))
        taken = []
        for run in stale:
            if run.id in just_claimed:
                continue  # ours, from this very transaction (a lease shorter than a claim)
            values: dict[str, Any] = {"worker_name": self.name, "state_timestamp": utcnow()}
            if on_host:
                values["host_id"] = self.host_id
            # Compare-and-set: only one dispatcher takes over a given stale claim.
            result = session.execute(
                update(FlowRun)
                .where(
                    FlowRun.id == run.id,
                    FlowRun.infrastructure_id.is_(None),
                    FlowRun.state_timestamp == run.state_timestamp,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                session.refresh(run)
                taken.append(run)
        return taken

    def _prepare(
        self,
        session: Any,
        pool: WorkPool,
        run: FlowRun,
        box: Any,
        deployment: Deployment | None = None,
    ) -> tuple[Submission | None, str | None]:
        """Render the run's job configuration with its credentials; or say why it cannot run.

        `box`: what _secret_box() returned, read before the transaction began."""
        from push_pools.store.blocks import block_resolver

        values = run_store.job_values(session, pool, run, deployment)
        try:
            pool_type = pool_types.get(pool.type)
            config = templates.render_job_configuration(
                pool.base_job_template,
                values,
                block_resolver(session, box),
                credential_slots=pool_type.credential_slots,
                pool_type=pool_type.name,
            )
        except PushPoolsError as exc:
            return None, exc.message
        engine_env = {"PUSH_POOLS_FLOW_RUN_ID": run.id, "PUSH_POOLS_API_URL": self.api_url}
        # The run's own token, never the server's key: the engine (and the flow's code) can
        # then reach this run and nothing else.
        engine_env["PUSH_POOLS_API_KEY"] = run_tokens.issue(session, run.id)
        submission = Submission(
            flow_run_id=run.id,
            flow_run_name=run.name,
            job_configuration=config,
            engine_env=engine_env,
            infrastructure_name=infrastructure_name(run),
            pool_name=pool.name,
            deployment_id=run.deployment_id,
        )
        return submission, None

    def _record_submissions(self, outcomes: list[tuple[str, str | None, str | None]]) -> None:
        now = utcnow()
        with self.store.session() as session:
            # One query for the batch: a query per run would also flush per run.
            runs = run_store.lock_runs(session, [run_id for run_id, _, _ in outcomes])
            for run_id, infrastructure_id, error in outcomes:
                run = runs.get(run_id)
                if run is None:
                    continue  # deleted while we submitted; the watcher never sees it
                if StateType(run.state_type) in FINAL:
                    # Cancelled while we submitted: recorded all the same, so the watcher
                    # stops and cleans up what started.
                    if infrastructure_id is not None and run.infrastructure_id is None:
                        run.infrastructure_id = infrastructure_id
                        self._introduced.add(infrastructure_id)
                        self._checks[run_id] = _Check(due=self._monotonic())
                    continue
                if error is not None:
                    run_store.record_state(
                        session,
                        run,
                        StateType.CRASHED,
                        f"could not be submitted: {error}",
                        {"dispatcher": self.name},
                        now=now,
                    )
                    continue
                if run.worker_name != self.name or run.infrastructure_id == infrastructure_id:
                    # Another dispatcher took the claim over while our submit was slow; the
                    # name made its submit adopt ours, and it has recorded it already.
                    continue
                run.infrastructure_id = infrastructure_id
                self._introduced.add(infrastructure_id or "")
                if run.state_type == StateType.PENDING.value:
                    run_store.record_state(
                        session,
                        run,
                        StateType.PENDING,
                        f"submitted by {self.name} as {infrastructure_id}",
                        {"dispatcher": self.name, "infrastructure_id": infrastructure_id},
                        now=now,
                        name="Submitted",
                    )
                self._checks[run_id] = _Check(due=self._monotonic() + 0.5)

    # --- watching ------------------------------------------------------------------------------

    def watch_once(self) -> None:
        """Check submitted runs whose check is due: crashes, deadlines, cancels, cleanup."""
        clock = self._monotonic()
        with self.store.session() as session:
            pools = {p.id: p for p in self.push_pools(session)}
            if not pools:
                return
            rows = list(
                session.scalars(
                    select(FlowRun).where(
                        FlowRun.work_pool_id.in_(list(pools)),
                        FlowRun.infrastructure_id.is_not(None),
                        FlowRun.infrastructure_released.is_(False),
                    )
                )
            )
        executors = self._executors_for(list(pools.values()))
        mine = [r for r in rows if self._owns(executors[pools[r.work_pool_id or ""].type], r)]
        for run_id in set(self._checks) - {r.id for r in mine}:
            del self._checks[run_id]  # released, deleted or another host's: nothing to check
        due = [
            r
            for r in mine
            if r.state_type == StateType.CANCELLING.value
            or self._checks.setdefault(r.id, _Check(due=clock)).due <= clock
        ]
        if not due:
            return
        strangers = [
            r
            for r in due
            if r.infrastructure_id not in self._introduced
            and executors[pools[r.work_pool_id or ""].type].needs_remember
        ]
        box = self._secret_box() if strangers else None
        with self.store.session() as session:
            seen = self._read(session, pools, due)
            introductions = [
                (run, self._prepare(session, pools[run.work_pool_id or ""], run, box))
                for run in strangers
            ]
        self._introduce(executors, pools, introductions)
        self._introduced.update(r.infrastructure_id or "" for r in due)

        by_type: dict[str, list[_Seen]] = {}
        for item in seen:
            by_type.setdefault(item.pool.type, []).append(item)
        for pool_type, items in by_type.items():
            executor = executors[pool_type]
            for start in range(0, len(items), STATUS_BATCH):
                batch = items[start : start + STATUS_BATCH]
                try:
                    statuses = executor.status([i.infrastructure_id for i in batch])
                except Exception as exc:  # a cloud outage: look again later, crash nothing
                    log.warning("status of %d %s runs failed: %s", len(batch), pool_type, exc)
                    for item in batch:
                        self._back_off(item.run_id)
                    continue
                for item in batch:
                    status = statuses.get(
                        item.infrastructure_id, InfrastructureStatus(InfrastructureState.MISSING)
                    )
                    self._act_on(executor, item, status)

    def _read(self, session: Any, pools: dict[str, WorkPool], due: list[FlowRun]) -> list[_Seen]:
        """What the watcher needs of each due run, read in one transaction: its job variables'
        deadlines and whether to keep its infrastructure."""
        now = utcnow()
        claimed_at = _claim_times(
            session, [r.id for r in due if r.state_type == StateType.PENDING.value]
        )
        seen = []
        for run in due:
            pool = pools[run.work_pool_id or ""]
            values = run_store.job_values(session, pool, run)
            pool_type = pool_types.get(pool.type)
            seen.append(
                _Seen(
                    run_id=run.id,
                    pool=pool,
                    infrastructure_id=run.infrastructure_id or "",
                    state=StateType(run.state_type),
                    state_timestamp=run.state_timestamp,
                    keep_infrastructure=bool(
                        _variable(values, pool_type.keep_infrastructure_variable)
                    ),
                    deadline=_deadline_passed(
                        pool_type, values, run, claimed_at.get(run.id) or run.state_timestamp, now
                    ),
                )
            )
        return seen

    def _introduce(
        self,
        executors: dict[str, Any],
        pools: dict[str, WorkPool],
        introductions: list[tuple[FlowRun, tuple[Submission | None, str | None]]],
    ) -> None:
        """Give executors the runs they did not submit (after a restart, or another server's),
        so they reach that run's infrastructure with the run's own credentials."""
        for run, (submission, error) in introductions:
            if submission is None:
                log.warning("cannot reach the infrastructure of run %s: %s", run.id, error)
                continue
            executor = executors[pools[run.work_pool_id or ""].type]
            executor.remember(run.infrastructure_id or "", submission)

    def _act_on(self, executor: Any, seen: _Seen, status: InfrastructureStatus) -> None:
        """Do what the run's state and its infrastructure's status call for: executor calls
        first, with no transaction open, then the outcome if the run is still as seen."""
        gone = status.state in (InfrastructureState.EXITED, InfrastructureState.MISSING)
        if seen.state in FINAL:
            if gone:
                self._release(executor, seen)
                return
            if seen.state == StateType.CANCELLED:
                self._stop(executor, seen.infrastructure_id)
        elif seen.state == StateType.CANCELLING:
            if self._stop(executor, seen.infrastructure_id) or gone:
                self._write_back(seen, self._cancelled)
        elif gone:
            lines = self._infrastructure_output(executor, seen)
            if lines is not None and self._write_back(seen, self._crashed(status, lines)):
                # Soon again: the infrastructure is to be cleaned up.
                self._checks[seen.run_id] = _Check(due=self._monotonic())
            return
        elif seen.deadline is not None:
            if self._write_back(seen, self._crashed_by_deadline(seen.deadline)):
                self._stop(executor, seen.infrastructure_id)
        self._back_off(seen.run_id)

    def _write_back(self, seen: _Seen, change: Callable[[Any, FlowRun], None]) -> bool:
        """Apply `change` to the run in a short transaction if the run is still as `seen`
        (state, its time and infrastructure); otherwise look at it again on the next tick."""
        with self.store.session() as session:
            run = session.scalar(select(FlowRun).where(FlowRun.id == seen.run_id).with_for_update())
            if run is None:
                self._checks.pop(seen.run_id, None)
                return False
            if not _unchanged(run, seen):
                # Changed while we were calling the executor: another server or the engine got
                # there first. What we saw is stale; the next tick decides afresh.
                self._checks[seen.run_id] = _Check(due=self._monotonic())
                return False
            change(session, run)
            return True

    def _cancelled(self, session: Any, run: FlowRun) -> None:
        run_store.record_state(
            session,
            run,
            StateType.CANCELLED,
            "cancelled; infrastructure stopped",
            {"infrastructure_id": run.infrastructure_id, "dispatcher": self.name},
        )

    def _crashed(
        self, status: InfrastructureStatus, lines: list[str]
    ) -> Callable[[Any, FlowRun], None]:
        def change(session: Any, run: FlowRun) -> None:
            from push_pools.models import LogIn

            over_memory = status.reason == "memory" and bool(status.message)
            entries = []
            if lines and not _has_logs(session, run.id):
                # Over its memory limit, the engine's traceback only says where an allocation
                # failed inside push-pools or Python: the ERROR line below says why.
                shown = without_tracebacks(lines) if over_memory else lines
                entries = [LogIn(message=f"[infrastructure] {line}") for line in shown]
            if over_memory:
                entries.append(LogIn(level="ERROR", message=_crash_message(status)))
            if entries:
                run_store.add_logs(session, run.id, entries)
            run_store.record_state(
                session,
                run,
                StateType.CRASHED,
                _crash_message(status),
                {
                    "exit_code": status.exit_code,
                    "reason": status.reason,
                    "infrastructure_id": run.infrastructure_id,
                    "dispatcher": self.name,
                },
            )

        return change

    def _crashed_by_deadline(self, reason: str) -> Callable[[Any, FlowRun], None]:
        def change(session: Any, run: FlowRun) -> None:
            run_store.record_state(
                session,
                run,
                StateType.CRASHED,
                reason,
                {"infrastructure_id": run.infrastructure_id, "dispatcher": self.name},
            )

        return change

    def _stop(self, executor: Any, infrastructure_id: str) -> bool:
        """Ask the executor to stop the infrastructure, once: it may take a while to stop, and
        each check in the meantime must not send another request. True if asked now."""
        if infrastructure_id in self._stopping:
            return False
        self._stopping.add(infrastructure_id)
        try:
            executor.cancel(infrastructure_id)
        except Exception as exc:  # a cloud outage: asked again on a later check
            self._stopping.discard(infrastructure_id)
            log.warning("could not stop %s: %s", infrastructure_id, exc)
            return False
        return True

    def _back_off(self, run_id: str) -> None:
        check = self._checks.setdefault(run_id, _Check(due=0))
        check.interval = min(check.interval * 2, MAX_CHECK_INTERVAL)
        check.due = self._monotonic() + check.interval

    def _infrastructure_output(self, executor: Any, seen: _Seen) -> list[str] | None:
        """The infrastructure's last output lines, to keep as the run's logs when the engine
        never shipped one, so `flow-run logs` shows why it died. None if the run has changed
        since it was seen (the caller then leaves it to the next tick)."""
        with self.store.session() as session:
            run = session.get(FlowRun, seen.run_id)
            if run is None or not _unchanged(run, seen):
                self._checks[seen.run_id] = _Check(due=self._monotonic())
                return None
            if _has_logs(session, run.id):
                return []
        try:
            return list(executor.logs(seen.infrastructure_id, 200))
        except Exception as exc:  # logs are a courtesy; the crash is recorded regardless
            log.warning("could not read the output of %s: %s", seen.infrastructure_id, exc)
            return []

    def _release(self, executor: Any, seen: _Seen) -> None:
        if not seen.keep_infrastructure:
            try:
                executor.cleanup(seen.infrastructure_id)
            except Exception as exc:  # a cloud outage: cleaned up on a later check
                message = exc.message if isinstance(exc, PushPoolsError) else str(exc)
                log.warning("cleanup of %s failed: %s", seen.infrastructure_id, message)
                self._back_off(seen.run_id)
                return

        def released(_session: Any, run: FlowRun) -> None:
            run.infrastructure_released = True

        if self._write_back(seen, released):
            self._checks.pop(seen.run_id, None)
            self._stopping.discard(seen.infrastructure_id)


def _runs_on_host(executor: Any) -> bool:
    """Whether the executor's infrastructure lives on this host's own disk (managed sandboxes),
    where no other host can reach it."""
    return bool(getattr(executor, "runs_on_host", False))


def _unchanged(run: FlowRun, seen: _Seen) -> bool:
    return (
        run.state_type == seen.state.value
        and (run.infrastructure_id or "") == seen.infrastructure_id
        and run.state_timestamp == seen.state_timestamp
    )


def _has_logs(session: Any, run_id: str) -> bool:
    from push_pools.store.tables import Log

    return session.scalar(select(Log.id).where(Log.flow_run_id == run_id).limit(1)) is not None


def _deadline_passed(
    pool_type: pool_types.PoolType,
    values: dict[str, Any],
    run: FlowRun,
    claimed_at: datetime,
    now: datetime,
) -> str | None:
    if run.state_type == StateType.PENDING.value:
        limit = _variable(values, pool_type.start_timeout_variable) or DEFAULT_START_TIMEOUT_SECONDS
        if now - claimed_at > timedelta(seconds=float(limit)):
            return f"did not start within its start timeout of {limit:g} s"
    max_run = _variable(values, pool_type.max_run_variable)
    if run.state_type == StateType.RUNNING.value and max_run and run.start_time:
        if now - run.start_time > timedelta(seconds=float(max_run)):
            return f"exceeded its maximum run time of {max_run:g} s"
    return None


def _variable(values: dict[str, Any], name: str | None) -> Any:
    """A job variable the pool type names for a dispatcher setting; None if it names none."""
    return values.get(name) if name else None


def _load_deployments(session: Any, runs: list[FlowRun]) -> dict[str, Deployment]:
    ids = {run.deployment_id for run in runs if run.deployment_id}
    if not ids:
        return {}
    return {d.id: d for d in session.scalars(select(Deployment).where(Deployment.id.in_(ids)))}


def _claim_times(session: Any, run_ids: list[str]) -> dict[str, datetime]:
    """When each run was first claimed (its first Pending state), in one query."""
    from push_pools.store.tables import FlowRunState

    if not run_ids:
        return {}
    rows = session.execute(
        select(FlowRunState.flow_run_id, func.min(FlowRunState.timestamp))
        .where(
            FlowRunState.flow_run_id.in_(run_ids),
            FlowRunState.type == StateType.PENDING.value,
        )
        .group_by(FlowRunState.flow_run_id)
    ).tuples()
    return {run_id: claimed_at for run_id, claimed_at in rows}


def _crash_message(status: InfrastructureStatus) -> str:
    if status.state == InfrastructureState.MISSING:
        message = "its infrastructure disappeared before the run reached a final state"
    elif status.reason == "memory" and status.message:
        # The sentence names the limit; the exit code and the allocation's traceback add nothing.
        return status.message.splitlines()[0]
    elif status.message:
        # The executor's own sentence ("exceeded its timeout of 60 s"); its first line
        # only, the output tail follows anyway.
        message = status.message.splitlines()[0]
        if "code" not in message:
            message += f" (exit code {status.exit_code})"
    else:
        message = f"its infrastructure exited with code {status.exit_code}"
        if status.reason and status.reason not in ("exited",):
            message += f" ({status.reason})"
        message += " before the run reached a final state"
    if status.last_lines:
        message += "; last output:\n" + "\n".join(status.last_lines[-10:])
    return message
