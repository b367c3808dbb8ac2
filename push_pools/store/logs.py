"""A run's log lines: storing them within the run's quota, and reading them in pages.

Over its quota (push_pools/log_limits.py) a run keeps its first lines and its newest ones: one
line between the two says how many were dropped, and each new batch replaces the oldest of the
newest lines. So a flow that prints without end still shows how it started and how it ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from push_pools import log_limits
from push_pools.errors import InvalidInput
from push_pools.models import LogIn, LogOut
from push_pools.store import masking
from push_pools.store.tables import Log, LogUsage, utcnow

LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# A page of logs stops at this many bytes of messages (UTF-8; at least one line is returned).
DEFAULT_PAGE_BYTES = 1_000_000
MAX_PAGE_BYTES = 8_000_000


@dataclass(frozen=True)
class Quota:
    lines: int = log_limits.RUN_QUOTA_LINES
    chars: int = log_limits.RUN_QUOTA_CHARS
    tail_lines: int = log_limits.TAIL_LINES
    tail_chars: int = log_limits.TAIL_CHARS


@dataclass(frozen=True)
class Added:
    count: int  # lines received
    dropped: int  # of those, lines not kept (or older lines dropped to make room for them)


def add_logs(
    session: Session,
    run_id: str,
    entries: list[LogIn],
    quota: Quota | None = None,
    *,
    dropped_by_client: int = 0,
) -> Added:
    """Store `entries` for the run (which the caller has locked, see runs.lock_run).

    `dropped_by_client`: lines the client counted but did not send, because the run is over
    its quota (the engine keeps only the newest lines then); they are added to the count.
    Every entry is checked before anything is written: a bad one refuses the whole batch."""
    quota = quota or Quota()
    now = utcnow()
    # Stored masked: no block secret or run token a flow printed is kept in clear.
    messages = masking.mask_texts(session, [log_limits.truncate(e.message) for e in entries])
    rows = [_row(run_id, e, m, now) for e, m in zip(entries, messages, strict=True)]
    if not rows and not dropped_by_client:
        return Added(0, 0)
    usage = _usage(session, run_id)
    if dropped_by_client:
        if usage.marker_id is None:
            _place_marker(session, usage, quota)
        usage.dropped += dropped_by_client
        _update_marker(session, usage, quota)
    fitting = 0
    lines, chars = usage.lines, usage.chars
    if usage.marker_id is None:
        for row in rows:
            size = len(row["message"])
            if lines + 1 > quota.lines or chars + size > quota.chars:
                break
            lines, chars, fitting = lines + 1, chars + size, fitting + 1
    _insert(session, rows[:fitting])
    usage.lines, usage.chars = lines, chars
    rest = rows[fitting:]
    if not rest:
        return Added(len(rows), dropped_by_client)

    dropped_before = usage.dropped
    if usage.marker_id is None:
        _place_marker(session, usage, quota)
    newest = _newest(rest, quota)
    usage.dropped += len(rest) - len(newest)
    newest_before = session.scalar(select(func.max(Log.id)).where(Log.flow_run_id == run_id))
    _insert(session, newest)
    usage.lines += len(newest)
    usage.chars += sum(len(row["message"]) for row in newest)
    _make_room(session, usage, quota, up_to=newest_before or 0)
    _update_marker(session, usage, quota)
    return Added(len(rows), usage.dropped - dropped_before + dropped_by_client)


def _row(run_id: str, entry: LogIn, message: str, now: datetime) -> dict[str, Any]:
    level = entry.level.upper()
    if level not in LEVELS:
        raise InvalidInput(
            f"unknown log level '{entry.level}'; use one of {', '.join(sorted(LEVELS))}"
        )
    return {
        "flow_run_id": run_id,
        "level": level,
        "message": message,
        "timestamp": entry.timestamp or now,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        # One multi-row statement: a batch of a thousand lines is one round trip, not a thousand.
        session.execute(insert(Log), rows)


def _usage(session: Session, run_id: str) -> LogUsage:
    usage = session.get(LogUsage, run_id)
    if usage is None:
        # A run from before quotas (or with no lines yet): count what it has.
        lines, chars = session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(Log.message)), 0)).where(
                Log.flow_run_id == run_id
            )
        ).one()
        usage = LogUsage(flow_run_id=run_id, lines=lines, chars=int(chars), dropped=0)
        session.add(usage)
    return usage


def _place_marker(session: Session, usage: LogUsage, quota: Quota) -> None:
    """Turn the first line past the run's first lines (the quota less room for the newest
    lines) into the line that counts the dropped ones."""
    head_lines = quota.lines - quota.tail_lines
    head_chars = quota.chars - quota.tail_chars
    lines = chars = 0
    rows = session.execute(
        select(Log.id, func.length(Log.message))
        .where(Log.flow_run_id == usage.flow_run_id)
        .order_by(Log.id)
    )
    for log_id, size in rows:
        lines, chars = lines + 1, chars + size
        if lines > head_lines or chars > head_chars:
            usage.marker_id = log_id
            usage.dropped += 1
            usage.chars -= size
            session.execute(update(Log).where(Log.id == log_id).values(level="WARNING", message=""))
            return
    # Only with a quota smaller than its room for the newest lines: the marker comes last.
    usage.lines += 1
    usage.marker_id = session.scalar(
        insert(Log)
        .values(flow_run_id=usage.flow_run_id, level="WARNING", message="", timestamp=utcnow())
        .returning(Log.id)
    )


def _newest(rows: list[dict[str, Any]], quota: Quota) -> list[dict[str, Any]]:
    """The newest rows that fit in the room kept for the newest lines."""
    kept: list[dict[str, Any]] = []
    chars = 0
    for row in reversed(rows):
        size = len(str(row["message"]))
        if len(kept) + 1 > quota.tail_lines - 1 or chars + size > quota.tail_chars:
            break
        kept.append(row)
        chars += size
    kept.reverse()
    return kept


def _make_room(session: Session, usage: LogUsage, quota: Quota, up_to: int) -> None:
    """Drop the oldest of the newest lines (those stored before this batch) until the run is
    within its quota again."""
    excess_lines = usage.lines - quota.lines
    excess_chars = usage.chars - quota.chars
    if excess_lines <= 0 and excess_chars <= 0:
        return
    last_dropped = None
    rows = session.execute(
        select(Log.id, func.length(Log.message))
        .where(Log.flow_run_id == usage.flow_run_id, Log.id > usage.marker_id, Log.id <= up_to)
        .order_by(Log.id)
    )
    for log_id, size in rows:
        if excess_lines <= 0 and excess_chars <= 0:
            break
        last_dropped = log_id
        excess_lines, excess_chars = excess_lines - 1, excess_chars - size
        usage.lines -= 1
        usage.chars -= size
        usage.dropped += 1
    if last_dropped is not None:
        session.execute(
            delete(Log).where(
                Log.flow_run_id == usage.flow_run_id,
                Log.id > usage.marker_id,
                Log.id <= last_dropped,
            )
        )


def _update_marker(session: Session, usage: LogUsage, quota: Quota) -> None:
    marker = session.get(Log, usage.marker_id)
    if marker is None:
        return
    usage.chars -= len(marker.message)
    marker.message = (
        f"[push-pools] {usage.dropped:,} log lines dropped: this run is over its log quota of "
        f"{quota.lines:,} lines or {quota.chars:,} characters. Its first lines are above, "
        "its newest below."
    )
    usage.chars += len(marker.message)


def get_logs(
    session: Session,
    run_id: str,
    after: int = 0,
    limit: int = 1000,
    max_bytes: int = DEFAULT_PAGE_BYTES,
) -> list[LogOut]:
    """A page of the run's logs after id `after`: at most `limit` lines and `max_bytes` bytes
    of messages (always at least one line, so that paging moves on)."""
    # Read in small chunks: a page ends by its size, long before `limit` lines of long ones.
    rows = session.scalars(
        select(Log)
        .where(Log.flow_run_id == run_id, Log.id > after)
        .order_by(Log.id)
        .limit(limit)
        .execution_options(yield_per=200)
    )
    page: list[LogOut] = []
    size = 0
    try:
        for row in rows:
            line_size = len(row.message.encode())
            if page and size + line_size > max_bytes:
                break
            size += line_size
            page.append(
                LogOut(
                    id=row.id,
                    flow_run_id=row.flow_run_id,
                    level=row.level,
                    message=row.message,
                    timestamp=row.timestamp,
                )
            )
    finally:
        rows.close()
    return page
