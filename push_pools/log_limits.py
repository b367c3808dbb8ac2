"""How big a run's logs may get: one line, one run. Shared by the engine and the server.

The engine truncates before it sends (so a huge line costs neither memory nor bandwidth) and the
server truncates again (clients other than our engine post logs too).
"""

from __future__ import annotations

# One log entry (a line, or a multi-line record such as a traceback).
MAX_MESSAGE_CHARS = 65_536
# A run keeps at most this many lines and characters; beyond them the first lines and the
# newest lines are kept, and one line in between says how many were dropped.
RUN_QUOTA_LINES = 100_000
RUN_QUOTA_CHARS = 20_000_000
# The newest lines a run over its quota keeps (at most this much of the quota).
TAIL_LINES = 1_000
TAIL_CHARS = 1_000_000


def truncate(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`message`, or its start with a visible marker saying how much was cut when too long."""
    if len(message) <= limit:
        return message
    marker = " [... truncated: {total:,} characters, the last {cut:,} not shown]"
    # Sized for the largest number it can show, so the result never exceeds `limit`.
    keep = max(0, limit - len(marker.format(total=len(message), cut=len(message))))
    return message[:keep] + marker.format(total=len(message), cut=len(message) - keep)
