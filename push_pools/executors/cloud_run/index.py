"""Which execution each run started, per job, learned from run_job answers and listings.

Cloud Run cannot list a job's executions by an env value, so finding "the execution of run X"
means reading the job's executions. Read naively on every submit, a deployment's N runs cost
N^2 executions read. The index keeps what it has read: executions are listed newest first
("sorted by creation time, descending", says the v2 reference of executions.list), and a listing
stops where the previous one began, so each execution is read about once per process. That
order is checked as it is read: a listing out of order is read to its end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# A job with more tagged executions than this starts its index again (bounded memory).
MAX_PER_JOB = 50_000
# Executions this close to the newest one read are read again next time: one that was being
# created during a listing may carry an earlier timestamp than one the listing already showed.
OVERLAP_SECONDS = 1.0


@dataclass
class _JobIndex:
    executions: dict[str, str] = field(default_factory=dict)  # infrastructure id -> name
    # Every execution created before this (a server timestamp) has been read; None: none yet.
    complete_before: float | None = None


class ExecutionIndex:
    def __init__(self, tag_of: Callable[[Any], str | None]) -> None:
        self._tag_of = tag_of
        self._lock = threading.Lock()
        self._jobs: dict[str, _JobIndex] = {}

    def add(self, job_id: str, infrastructure_id: str, execution_name: str) -> None:
        with self._lock:
            self._job(job_id).executions[infrastructure_id] = execution_name

    def get(self, job_id: str, infrastructure_id: str) -> str | None:
        with self._lock:
            index = self._jobs.get(job_id)
            return index.executions.get(infrastructure_id) if index else None

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def find(
        self, job_id: str, infrastructure_id: str, pages: Callable[[bool], Iterable[Any]]
    ) -> str | None:
        """The execution of `infrastructure_id`, reading the job's executions not read yet.

        `pages(again)` yields the job's ListExecutions pages (objects with `.executions`),
        newest first; they are read lazily, so stopping early saves the calls for the rest.
        `again` says an earlier listing was read, so a few new executions are expected (a
        small page) rather than all of them.
        """
        found = self.get(job_id, infrastructure_id)
        if found is not None:
            return found
        with self._lock:
            stop_before = self._job(job_id).complete_before
        learned: dict[str, str] = {}
        newest: float | None = None
        previous: float | None = None
        in_order = True
        reached_known = False
        for page in pages(stop_before is not None):
            for execution in page.executions:
                created = _created(execution)
                follows = previous is not None
                if created is not None:
                    newest = created if newest is None else max(newest, created)
                    if previous is not None and created > previous:
                        in_order = False  # not newest first: this listing reads everything
                    previous = created
                tag = self._tag_of(execution)
                if tag is not None:
                    learned[tag] = str(execution.name)
                # Never on the first execution read: one alone shows no order.
                if (
                    in_order
                    and follows
                    and stop_before is not None
                    and created is not None
                    and created < stop_before
                ):
                    reached_known = True
                    break
            if reached_known:
                break
        with self._lock:
            index = self._job(job_id)
            index.executions.update(learned)
            if newest is not None:
                # Read without a gap from the newest down to what was read before (or to the
                # end): everything older than the newest seen is known now.
                settled = newest - OVERLAP_SECONDS
                index.complete_before = max(settled, index.complete_before or settled)
            if len(index.executions) > MAX_PER_JOB:
                self._jobs[job_id] = _JobIndex()
            return learned.get(infrastructure_id) or index.executions.get(infrastructure_id)

    def _job(self, job_id: str) -> _JobIndex:
        index = self._jobs.get(job_id)
        if index is None:
            index = self._jobs[job_id] = _JobIndex()
        return index


def _created(execution: Any) -> float | None:
    if "create_time" not in execution:
        return None
    return float(execution.create_time.timestamp())
