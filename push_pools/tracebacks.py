"""A failed flow's traceback as its author wants to read it: their own frames, not the
engine's. `PUSH_POOLS_FULL_TRACEBACK=1` (e.g. in the job's `env`) shows every frame."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

__all__ = ["FULL_TRACEBACK_ENV", "user_traceback", "without_tracebacks"]

FULL_TRACEBACK_ENV = "PUSH_POOLS_FULL_TRACEBACK"
_OURS = str(Path(__file__).resolve().parent) + os.sep
# The standard library's frames (the threads that run a flow under a timeout, and any stdlib
# function the flow called: the user's own frame that called it stays and names the line).
_STDLIB = str(Path(traceback.__file__).resolve().parent) + os.sep


def _is_machinery(filename: str) -> bool:
    path = str(Path(filename).resolve()) if filename and not filename.startswith("<") else ""
    return path.startswith(_OURS) or (path.startswith(_STDLIB) and "site-packages" not in path)


def user_traceback(exc: BaseException) -> str:
    """The formatted traceback of `exc` without push-pools' own frames (all of them when
    PUSH_POOLS_FULL_TRACEBACK is set, or when every frame is ours)."""
    full = "".join(traceback.format_exception(exc))
    if os.environ.get(FULL_TRACEBACK_ENV, "").lower() in ("1", "true", "yes"):
        return full
    shown = traceback.TracebackException.from_exception(exc)
    frames = [frame for frame in shown.stack if not _is_machinery(frame.filename)]
    if not frames:
        return full
    shown.stack = traceback.StackSummary.from_list(frames)
    hidden = len(traceback.extract_tb(exc.__traceback__)) - len(frames)
    note = f"({hidden} push-pools frame(s) hidden; {FULL_TRACEBACK_ENV}=1 shows them)\n"
    return "".join(shown.format()) + (note if hidden else "")


def without_tracebacks(lines: list[str]) -> list[str]:
    """Output lines with every Python traceback in them left out (its header, frames, source
    lines, the exception line that ends it, and the sentences that chain one to the next);
    other output stays, in order."""
    kept: list[str] = []
    inside = ended = False
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            inside, ended = True, False
        elif inside and line.startswith((" ", "\t")):
            pass
        elif inside:
            inside, ended = False, True  # the exception line ends the traceback
        elif ended and (not line.strip() or line.startswith(_CHAINING)):
            pass
        else:
            ended = False
            kept.append(line)
    return kept


_CHAINING = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)
