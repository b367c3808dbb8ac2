"""The push loop: the server claims due runs of push and managed pools and starts them.

One `Dispatcher` serves every push pool type; a type's executor comes from the pool-type
registry, so adding an infrastructure never touches this module. Several dispatchers (servers)
may share one PostgreSQL store: claims use SKIP LOCKED, and infrastructure names derive from the
run id, so a submit retried by another dispatcher adopts what the first one started.
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

from sqlalchemy import select, update

from push_pools import pool_types, templates
from push_pools.errors import PushPoolsError
from push_pools.executors import load_executor
from push_pools.executors.base import InfrastructureState, InfrastructureStatus, Submission
from push_pools.states import ACTIVE, FINAL, StateType
from push_pools.store import run_tokens
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import Deployment, FlowRun, WorkPool, utcnow

log = logging.getLogger("push_pools.dispatch")

DEFAULT_START_TIMEOUT_SECONDS = 600
STATUS_BATCH = 100
# A claimed run with no infrastructure after this long was left by a dispatcher that died
# between claim and submit; another dispatcher resubmits it (the name makes that safe).
DEFAULT_LEASE_SECONDS = 30.0
MAX_CHECK_INTERVAL = 30.0
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


class Dispatcher:
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
    ) -> None:
        self.store = store
        # When each run's next check is due; injectable so that tests of the backoff do not
        # depend on how fast the machine loops.
        self._monotonic = monotonic
        self.api_url = api_url
        self.name = name or default_dispatcher_name()
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self._executor_factory = executor_factory or (lambda pool_type: load_executor(pool_type))
        self._executors: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=submit_threads, thread_name_prefix="submit")
        self._checks: dict[str, _Check] = {}
        # Infrastructure ids whose executor knows the run's configuration (credentials,
        # region): those this dispatcher submitted, and those it introduced after a restart.
        self._introduced: set[str] = set()
        # Infrastructure ids this dispatcher already asked its executor to stop.
        self._stopping: set[str] = set()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self.run_forever, name="dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self._pool.shutdown(wait=True)

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                submitted = self.dispatch_once()
                self.watch_once()
            except Exception:  # one bad tick must not end dispatching; the next one retries
                log.exception("dispatch tick failed")
                submitted = 0
            if submitted:
                continue  # there may be more due runs: claim again at once
            # Woken by the API when a run is created; otherwise a short poll covers runs
            # created through another server sharing the store.
            self.wake.wait(self._next_wait())
            self.wake.clear()

    def _next_wait(self) -> float:
        if not self._checks:
            return 1.0
        soonest = min(c.due for c in self._checks.values()) - self._monotonic()
        return max(0.05, min(1.0, soonest))

    def executor(self, pool_type: str) -> Any:
        executor = self._executors.get(pool_type)
        if executor is None:
            executor = self._executors[pool_type] = self._executor_factory(pool_type)
        return executor

    # --- submitting ------------------------------------------------------------------------------

    def push_pools(self, session: Any) -> list[WorkPool]:
        push_types = [t for t in pool_types.names() if pool_types.get(t).is_push]
        return list(session.scalars(select(WorkPool).where(WorkPool.type.in_(push_types))))

    def dispatch_once(self) -> int:
        """Claim due runs of every push pool and submit them. Returns how many were submitted."""
        jobs: list[tuple[str, str, Submission | None, str | None]] = []
        with self.store.session() as session:
            for pool in self.push_pools(session):
                claimed = run_store.claim_runs(
                    session, pool, claimer=self.name, limit=self.batch_size
                ).runs
                claimed += self._take_over_stale_claims(session, pool)
                # Read once for the batch, not once per run.
                deployments = _load_deployments(session, claimed)
                for run in claimed:
                    deployment = deployments.get(run.deployment_id or "")
                    submission, error = self._prepare(session, pool, run, deployment)
                    jobs.append((pool.type, run.id, submission, error))
        if not jobs:
            return 0
        futures = [
            (
                run_id,
                error,
                None
                if submission is None
                else self._pool.submit(self.executor(pool_type).submit, submission),
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

    def _take_over_stale_claims(self, session: Any, pool: WorkPool) -> list[FlowRun]:
        cutoff = utcnow() - self.lease
        stale = list(
            session.scalars(
                select(FlowRun)
                .where(
                    FlowRun.work_pool_id == pool.id,
                    FlowRun.state_type == StateType.PENDING.value,
                    FlowRun.infrastructure_id.is_(None),
                    FlowRun.state_timestamp < cutoff,
                )
                .limit(self.batch_size)
            )
        )
        taken = []
        for run in stale:
            # Compare-and-set: only one dispatcher takes over a given stale claim.
            result = session.execute(
                update(FlowRun)
                .where(
                    FlowRun.id == run.id,
                    FlowRun.infrastructure_id.is_(None),
                    FlowRun.state_timestamp == run.state_timestamp,
                )
                .values(worker_name=self.name, state_timestamp=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                session.refresh(run)
                taken.append(run)
        return taken

    def _prepare(
        self, session: Any, pool: WorkPool, run: FlowRun, deployment: Deployment | None = None
    ) -> tuple[Submission | None, str | None]:
        """Render the run's job configuration with its credentials; or say why it cannot run."""
        from push_pools.blocks import SecretBox
        from push_pools.store.blocks import resolve_block

        values = run_store.job_values(session, pool, run, deployment)
        box: list[SecretBox] = []

        def resolve(block_type: str, block_name: str) -> dict[str, Any]:
            if not box:
                box.append(SecretBox.from_environment(create=False))
            try:
                return resolve_block(session, box[0], block_type, block_name)
            except PushPoolsError as exc:
                raise PushPoolsError(
                    f"cannot use credentials block '{block_name}' ({block_type}): {exc.message}"
                ) from exc

        try:
            pool_type = pool_types.get(pool.type)
            config = templates.render_job_configuration(
                pool.base_job_template,
                values,
                resolve,
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
            due = [
                r
                for r in rows
                if r.state_type == StateType.CANCELLING.value
                or self._checks.setdefault(r.id, _Check(due=clock)).due <= clock
            ]
            for run in due:
                self._introduce(session, pools[run.work_pool_id or ""], run)
            work = [(pools[r.work_pool_id], r.id, r.infrastructure_id) for r in due]
        by_type: dict[str, list[tuple[WorkPool, str, str]]] = {}
        for pool, run_id, infrastructure_id in work:
            by_type.setdefault(pool.type, []).append((pool, run_id, infrastructure_id or ""))
        for pool_type, items in by_type.items():
            executor = self.executor(pool_type)
            for start in range(0, len(items), STATUS_BATCH):
                batch = items[start : start + STATUS_BATCH]
                try:
                    statuses = executor.status([i for _, _, i in batch])
                except Exception as exc:  # a cloud outage: look again later, crash nothing
                    log.warning("status of %d %s runs failed: %s", len(batch), pool_type, exc)
                    for _, run_id, _ in batch:
                        self._back_off(run_id)
                    continue
                for pool, run_id, infrastructure_id in batch:
                    status = statuses.get(
                        infrastructure_id, InfrastructureStatus(InfrastructureState.MISSING)
                    )
                    self._act_on(executor, pool, run_id, infrastructure_id, status)

    def _act_on(
        self,
        executor: Any,
        pool: WorkPool,
        run_id: str,
        infrastructure_id: str,
        status: InfrastructureStatus,
    ) -> None:
        gone = status.state in (InfrastructureState.EXITED, InfrastructureState.MISSING)
        stop_reason: str | None = None
        with self.store.session() as session:
            try:
                # Locked: two servers that both see the infrastructure gone record one crash.
                run = run_store.lock_run(session, run_id)
            except PushPoolsError:
                self._checks.pop(run_id, None)
                return
            state = StateType(run.state_type)
            if state in FINAL:
                if gone or state == StateType.CANCELLED:
                    if not gone:
                        stop_reason = "cancelled"
                    else:
                        self._release(executor, session, pool, run)
                        return
            elif state == StateType.CANCELLING:
                stop_reason = "cancelled"
            elif gone:
                self._keep_infrastructure_logs(session, executor, run, infrastructure_id)
                run_store.record_state(
                    session,
                    run,
                    StateType.CRASHED,
                    _crash_message(status),
                    {
                        "exit_code": status.exit_code,
                        "reason": status.reason,
                        "infrastructure_id": infrastructure_id,
                        "dispatcher": self.name,
                    },
                )
                self._checks[run_id] = _Check(due=self._monotonic())
                return
            else:
                stop_reason = self._deadline_passed(session, pool, run)
                if stop_reason is not None:
                    run_store.record_state(
                        session,
                        run,
                        StateType.CRASHED,
                        stop_reason,
                        {"infrastructure_id": infrastructure_id, "dispatcher": self.name},
                    )
            self._back_off(run_id)
        if stop_reason is not None and infrastructure_id not in self._stopping:
            # Asked once: the infrastructure may take a while to stop, and each check in the
            # meantime must not send another stop request.
            self._stopping.add(infrastructure_id)
            executor.cancel(infrastructure_id)
            with self.store.session() as session:
                run = run_store.lock_run(session, run_id)
                if run.state_type == StateType.CANCELLING.value:
                    run_store.record_state(
                        session,
                        run,
                        StateType.CANCELLED,
                        "cancelled; infrastructure stopped",
                        {"infrastructure_id": infrastructure_id, "dispatcher": self.name},
                    )
            self._back_off(run_id)

    def _back_off(self, run_id: str) -> None:
        check = self._checks.setdefault(run_id, _Check(due=0))
        check.interval = min(check.interval * 2, MAX_CHECK_INTERVAL)
        check.due = self._monotonic() + check.interval

    def _introduce(self, session: Any, pool: WorkPool, run: FlowRun) -> None:
        """Give the executor a run it did not submit (after a restart, or another server's),
        so it can reach that run's infrastructure with the run's own credentials."""
        infrastructure_id = run.infrastructure_id or ""
        if infrastructure_id in self._introduced:
            return
        self._introduced.add(infrastructure_id)
        executor = self.executor(pool.type)
        if not executor.needs_remember:
            return
        submission, error = self._prepare(session, pool, run)
        if submission is not None:
            executor.remember(infrastructure_id, submission)
        else:
            log.warning("cannot reach the infrastructure of run %s: %s", run.id, error)

    def _keep_infrastructure_logs(
        self, session: Any, executor: Any, run: FlowRun, infrastructure_id: str
    ) -> None:
        """When the engine never shipped a line, keep the infrastructure's own output as the
        run's logs, so `flow-run logs` shows why it died."""
        from push_pools.models import LogIn
        from push_pools.store.tables import Log

        if session.scalar(select(Log.id).where(Log.flow_run_id == run.id).limit(1)):
            return
        try:
            lines = executor.logs(infrastructure_id, 200)
        except Exception as exc:  # logs are a courtesy; the crash is recorded regardless
            log.warning("could not read the output of %s: %s", infrastructure_id, exc)
            return
        if lines:
            run_store.add_logs(
                session, run.id, [LogIn(message=f"[infrastructure] {line}") for line in lines]
            )

    def _deadline_passed(self, session: Any, pool: WorkPool, run: FlowRun) -> str | None:
        values = run_store.job_values(session, pool, run)
        pool_type = pool_types.get(pool.type)
        now = utcnow()
        if run.state_type == StateType.PENDING.value:
            limit = (
                _variable(values, pool_type.start_timeout_variable) or DEFAULT_START_TIMEOUT_SECONDS
            )
            claimed_at = _claim_time(session, run) or run.state_timestamp
            if now - claimed_at > timedelta(seconds=float(limit)):
                return f"did not start within its start timeout of {limit:g} s"
        max_run = _variable(values, pool_type.max_run_variable)
        if run.state_type == StateType.RUNNING.value and max_run and run.start_time:
            if now - run.start_time > timedelta(seconds=float(max_run)):
                return f"exceeded its maximum run time of {max_run:g} s"
        return None

    def _release(self, executor: Any, session: Any, pool: WorkPool, run: FlowRun) -> None:
        values = run_store.job_values(session, pool, run)
        keep = _variable(values, pool_types.get(pool.type).keep_infrastructure_variable)
        if not keep:
            try:
                executor.cleanup(run.infrastructure_id)
            except PushPoolsError as exc:
                log.warning("cleanup of %s failed: %s", run.infrastructure_id, exc.message)
                return
        run.infrastructure_released = True
        self._checks.pop(run.id, None)
        self._stopping.discard(run.infrastructure_id or "")


def _variable(values: dict[str, Any], name: str | None) -> Any:
    """A job variable the pool type names for a dispatcher setting; None if it names none."""
    return values.get(name) if name else None


def _load_deployments(session: Any, runs: list[FlowRun]) -> dict[str, Deployment]:
    ids = {run.deployment_id for run in runs if run.deployment_id}
    if not ids:
        return {}
    return {d.id: d for d in session.scalars(select(Deployment).where(Deployment.id.in_(ids)))}


def _claim_time(session: Any, run: FlowRun) -> datetime | None:
    from push_pools.store.tables import FlowRunState

    return session.scalar(
        select(FlowRunState.timestamp)
        .where(FlowRunState.flow_run_id == run.id, FlowRunState.type == StateType.PENDING.value)
        .order_by(FlowRunState.id)
        .limit(1)
    )


def _crash_message(status: InfrastructureStatus) -> str:
    if status.state == InfrastructureState.MISSING:
        message = "its infrastructure disappeared before the run reached a final state"
    elif status.message:
        # The executor's own sentence ("exceeded its memory limit of 100 MiB"); its first line
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
