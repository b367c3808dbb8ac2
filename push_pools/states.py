"""Flow-run states and which moves between them the server accepts."""

from __future__ import annotations

from enum import StrEnum


class StateType(StrEnum):
    SCHEDULED = "SCHEDULED"
    LATE = "LATE"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"


FINAL = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED})
WAITING = frozenset({StateType.SCHEDULED, StateType.LATE})
ACTIVE = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})

DISPLAY_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.LATE: "Late",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CRASHED: "Crashed",
    StateType.CANCELLING: "Cancelling",
    StateType.CANCELLED: "Cancelled",
}

# Which state a run may move to from each state, when the move is proposed by a client (engine,
# worker, user). Final states accept nothing: a finished run stays finished.
ALLOWED_MOVES: dict[StateType, frozenset[StateType]] = {
    StateType.SCHEDULED: frozenset(
        {
            StateType.LATE,
            StateType.PENDING,
            StateType.RUNNING,
            StateType.CANCELLED,
            StateType.CRASHED,
        }
    ),
    StateType.LATE: frozenset(
        {StateType.PENDING, StateType.RUNNING, StateType.CANCELLED, StateType.CRASHED}
    ),
    StateType.PENDING: frozenset(
        {
            StateType.RUNNING,
            StateType.SCHEDULED,
            StateType.CANCELLING,
            StateType.CANCELLED,
            StateType.CRASHED,
            StateType.FAILED,
            StateType.COMPLETED,
        }
    ),
    StateType.RUNNING: frozenset(
        {
            StateType.RUNNING,
            StateType.COMPLETED,
            StateType.FAILED,
            StateType.CRASHED,
            StateType.CANCELLING,
            StateType.CANCELLED,
            StateType.SCHEDULED,
        }
    ),
    StateType.CANCELLING: frozenset({StateType.CANCELLED, StateType.CRASHED}),
}
for _final in FINAL:
    ALLOWED_MOVES[_final] = frozenset()
