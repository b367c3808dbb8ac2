"""The worker: polls a pool for runs, runs each through an executor, reports what happens.

Two loops share the work: the claim loop long-polls for runs whenever a slot is free (the server
answers the moment a run is due, so there is no fixed poll delay), and the watch loop heartbeats,
picks up cancel requests, and reaps finished processes, marking runs that died without a final
state Crashed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from push_pools.client import Client
from push_pools.errors import NotFound, PushPoolsError
from push_pools.executors.base import (
    Executor,
    InfrastructureState,
    InfrastructureUnavailable,
    Submission,
)
from push_pools.states import FINAL

log = logging.getLogger("push_pools.worker")

POLL_WAIT_SECONDS = 5.0
PREFETCH_SECONDS = 10.0
WATCH_INTERVAL_SECONDS = 2.0
# How long the claim loop waits after the infrastructure did not answer before claiming again.
UNAVAILABLE_BACKOFF_SECONDS = 5.0
CRASH_TAIL_LINES = 10


@dataclass
class ActiveRun:
    run_id: str
    name: str
    infrastructure_id: str
    cancel_requested: bool = False


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        pool: str,
        *,
        queues: list[str] | None = None,
        limit: int = 4,
        name: str | None = None,
        client_factory: Callable[[], Client] = Client,
        executor: Executor | None = None,
        poll_wait_seconds: float = POLL_WAIT_SECONDS,
        prefetch_seconds: float = PREFETCH_SECONDS,
        deployment_id: str | None = None,
    ) -> None:
        if limit < 1:
            raise PushPoolsError("--limit must be at least 1")
        self.pool = pool
        self.queues = queues or []
        self.limit = limit
        self.name = name or default_worker_name()
        self._client_factory = client_factory
        if executor is None:
            from push_pools.executors.process.executor import ProcessExecutor

            executor = ProcessExecutor()
        self.executor = executor
        self.poll_wait_seconds = poll_wait_seconds
        self.prefetch_seconds = prefetch_seconds
        # A `flow.serve()` process polls its own pool-less deployment instead of a pool.
        self.deployment_id = deployment_id
        self._active: dict[str, ActiveRun] = {}
        self._lock = threading.Lock()
        self._slot_freed = threading.Event()
        self.stopping = threading.Event()
        # Set when the server says the pool was deleted: the worker cancels its runs and stops,
        # and `push-pools worker start` exits non-zero.
        self.pool_deleted = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Worker:
        self.executor.prepare()
        for target, label in ((self._claim_loop, "claim"), (self._watch_loop, "watch")):
            thread = threading.Thread(target=target, name=f"worker-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, *, cancel_running: bool = False, timeout: float = 30.0) -> None:
        """Stop claiming; wait for running runs to end (or stop them with cancel_running)."""
        self.stopping.set()
        self._slot_freed.set()
        if cancel_running:
            for active in self.active_runs():
                self._stop_infrastructure(active, grace_seconds=5)
        for thread in self._threads:
            thread.join(timeout)
        self.executor.close()

    def active_runs(self) -> list[ActiveRun]:
        with self._lock:
            return list(self._active.values())

    # --- claiming ------------------------------------------------------------------------------

    def _poll(self, client: Client, limit: int, wait: float, running: list[str]) -> dict[str, Any]:
        body = {
            "worker_name": self.name,
            "queues": self.queues,
            "limit": limit,
            "wait_seconds": wait,
            "prefetch_seconds": self.prefetch_seconds,
            "running": running,
        }
        if self.deployment_id:
            body["deployment_ids"] = [self.deployment_id]
            return client.poll_deployments(body, timeout=wait + 30)
        return client.poll(self.pool, body, timeout=wait + 30)

    def _claim_loop(self) -> None:
        with self._client_factory() as client:
            while not self.stopping.is_set():
                free = self.limit - len(self.active_runs())
                if free <= 0:
                    self._slot_freed.wait(WATCH_INTERVAL_SECONDS)
                    self._slot_freed.clear()
                    continue
                try:
                    response = self._poll(client, free, self.poll_wait_seconds, [])
                except NotFound as exc:
                    if self._pool_was_deleted(client):
                        self._stop_for_deleted_pool()
                        break
                    log.warning("poll failed: %s", exc.message)
                    self.stopping.wait(2)
                    continue
                except PushPoolsError as exc:
                    log.warning("poll failed: %s", exc.message)
                    self.stopping.wait(2)
                    continue
                available = True
                released_because = "released by a stopping worker"
                for claimed in response["runs"]:
                    if self.stopping.is_set() or not available:
                        self._release(client, claimed["flow_run"]["id"], released_because)
                        continue
                    try:
                        self._start_run(client, claimed)
                    except InfrastructureUnavailable as exc:
                        available = False
                        released_because = f"given back to the pool: {exc.message}"
                        log.warning(
                            "%s; giving the claimed runs back and trying again in %.0f s",
                            exc.message,
                            UNAVAILABLE_BACKOFF_SECONDS,
                        )
                        self._release(client, claimed["flow_run"]["id"], released_because)
                if not available:
                    self.stopping.wait(UNAVAILABLE_BACKOFF_SECONDS)

    def _pool_was_deleted(self, client: Client) -> bool:
        """Whether a 404 from polling means the pool is gone (and not, say, one of the queues:
        those may come back, a deleted pool does not)."""
        if self.deployment_id:
            return False
        try:
            client.get_work_pool(self.pool)
        except NotFound:
            return True
        except PushPoolsError:
            return False  # the server is unreachable: ask again at the next poll
        return False

    def _stop_for_deleted_pool(self) -> None:
        """Stop claiming and stop the runs: a forced delete asked to cancel them, and nobody
        else can tell this worker so any more."""
        if self.pool_deleted.is_set():
            return
        self.pool_deleted.set()
        self.stopping.set()
        self._slot_freed.set()
        for active in self.active_runs():
            self._cancel(active.run_id)

    def _release(
        self, client: Client, run_id: str, reason: str = "released by a stopping worker"
    ) -> None:
        """Give a claimed run back to the pool, so another worker can take it."""
        try:
            client.set_state(run_id, {"type": "SCHEDULED", "message": reason})
        except PushPoolsError as exc:
            log.warning("could not release run %s: %s", run_id, exc.message)

    def _start_run(self, client: Client, claimed: dict[str, Any]) -> None:
        run = claimed["flow_run"]
        engine_env = {"PUSH_POOLS_FLOW_RUN_ID": run["id"], "PUSH_POOLS_API_URL": client.api_url}
        # The run's own token from the claim: the worker's key never reaches the flow.
        if claimed.get("token"):
            engine_env["PUSH_POOLS_API_KEY"] = claimed["token"]
        try:
            infrastructure_id = self.executor.submit(
                Submission(
                    flow_run_id=run["id"],
                    flow_run_name=run["name"],
                    job_configuration=claimed["job_configuration"],
                    engine_env=engine_env,
                    pool_name=self.pool if not self.deployment_id else "",
                )
            )
        except InfrastructureUnavailable:
            raise  # no fault of the run: the claim loop gives it back
        except (OSError, PushPoolsError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.error("could not start run %s: %s", run["name"], message)
            client.set_state(
                run["id"],
                {"type": "CRASHED", "message": f"the worker could not start it: {message}"},
            )
            return
        with self._lock:
            self._active[run["id"]] = ActiveRun(run["id"], run["name"], infrastructure_id)
        log.info("started run %s (%s) as %s", run["name"], run["id"], infrastructure_id)
        threading.Thread(
            target=self._wait_for_exit, args=(run["id"],), daemon=True, name="worker-reap"
        ).start()

    # --- watching ------------------------------------------------------------------------------

    def _wait_for_exit(self, run_id: str) -> None:
        active = self._active[run_id]
        code = self.executor.wait(active.infrastructure_id)
        with self._client_factory() as client:
            try:
                self._report_exit(client, active, code)
            except PushPoolsError as exc:
                log.error("could not report the end of run %s: %s", active.name, exc.message)
        try:
            self.executor.cleanup(active.infrastructure_id)
        except PushPoolsError as exc:
            log.warning("could not clean up after run %s: %s", active.name, exc.message)
        with self._lock:
            self._active.pop(run_id, None)
        self._slot_freed.set()

    def _report_exit(self, client: Client, active: ActiveRun, code: int | None) -> None:
        run = client.get_run(active.run_id)
        if run["state"] in FINAL:
            return
        if active.cancel_requested or run["state"] == "CANCELLING":
            client.set_state(active.run_id, {"type": "CANCELLED", "message": "cancelled"})
            return
        if self.stopping.is_set() and run["state"] == "PENDING":
            self._release(client, active.run_id)
            return
        tail = self.executor.logs(active.infrastructure_id, CRASH_TAIL_LINES)
        kind = getattr(self.executor, "infrastructure_kind", "process")
        if code is None:  # e.g. the Docker engine stopped answering while it ran
            message = f"the worker lost track of the flow run's {kind} before a final state"
        else:
            message = f"the flow run's {kind} exited with code {code} without a final state"
        if tail:
            message += "; last output:\n" + "\n".join(tail)
        client.set_state(
            active.run_id,
            {
                "type": "CRASHED",
                "message": message,
                "details": {"exit_code": code, "infrastructure_id": active.infrastructure_id},
            },
        )

    def _watch_loop(self) -> None:
        with self._client_factory() as client:
            while not self.stopping.is_set() or self.active_runs():
                if self.pool_deleted.is_set():
                    # Nothing to poll any more: wait for the cancelled runs to be reaped.
                    self.stopping.wait(0.2)
                    continue
                running = [a.run_id for a in self.active_runs()]
                wait = 0.0 if self.stopping.is_set() else WATCH_INTERVAL_SECONDS
                try:
                    response = self._poll(client, 0, wait, running)
                except NotFound as exc:
                    if self._pool_was_deleted(client):
                        self._stop_for_deleted_pool()
                        continue
                    log.warning("heartbeat failed: %s", exc.message)
                    self.stopping.wait(2)
                    continue
                except PushPoolsError as exc:
                    log.warning("heartbeat failed: %s", exc.message)
                    self.stopping.wait(2)
                    continue
                for run_id in response["cancel"]:
                    self._cancel(run_id)
                if self.stopping.is_set():
                    self.stopping.wait(0.5)

    def _cancel(self, run_id: str) -> None:
        with self._lock:
            active = self._active.get(run_id)
        if active is None or active.cancel_requested:
            return
        active.cancel_requested = True
        log.info("cancelling run %s", active.name)
        threading.Thread(target=self._stop_infrastructure, args=(active,), daemon=True).start()

    def _stop_infrastructure(self, active: ActiveRun, grace_seconds: float = 10.0) -> None:
        try:
            self.executor.cancel(active.infrastructure_id, grace_seconds=grace_seconds)
        except PushPoolsError as exc:
            log.warning("could not stop run %s: %s", active.name, exc.message)

    def infrastructure_state(self, run_id: str) -> InfrastructureState | None:
        with self._lock:
            active = self._active.get(run_id)
        if active is None:
            return None
        return self.executor.status([active.infrastructure_id])[active.infrastructure_id].state
