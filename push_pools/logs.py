"""Shipping a run's log lines to the API in batches, from a background thread.

Nothing is dropped silently: a flow that prints faster than the API stores is slowed down
(the buffer is bounded, and a full one makes the printing thread wait), the shipper drains
everything before the engine reports the final state, a batch the API refuses is split until
the line it refuses is found and replaced by a line that says so, and lines that could not be
sent at all are counted in a line sent once the API answers again.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, TextIO

from push_pools import log_limits
from push_pools.client import Client, new_write_key
from push_pools.errors import InvalidInput, NotFound, PushPoolsError, ServerUnreachable
from push_pools.log_limits import truncate

BATCH_LINES = 1_000
BATCH_CHARS = 1_000_000
# What may wait to be sent before printing waits for the shipper.
BUFFER_LINES = 20_000
BUFFER_CHARS = 4_000_000
FLUSH_INTERVAL_SECONDS = 0.25
# A batch the API answered with an error other than "refused" is tried this many times.
SEND_ATTEMPTS = 5
# After the API stayed unreachable through the client's own retries, lines are counted, not
# sent, for this long before the next try.
UNREACHABLE_PAUSE_SECONDS = 30.0

# Over the run's quota, the newest lines are sent this often (the API keeps only the newest
# ones by then, so the rest is counted here instead of being sent).
TAIL_FLUSH_SECONDS = 1.0

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Buffer:
    """A bounded FIFO of log entries, bounded in lines and in characters."""

    def __init__(self, max_lines: int, max_chars: int) -> None:
        self._entries: deque[dict[str, Any]] = deque()
        self._chars = 0
        self._max_lines = max_lines
        self._max_chars = max_chars
        self._closed = False
        self._changed = threading.Condition()
        # The batch the taker waits for: it is woken when that much is there, not per entry.
        self._wanted_lines = 1
        self._wanted_chars = 1

    def put(self, entry: dict[str, Any], wait: bool) -> bool:
        """Add an entry, waiting for room if `wait`; False when it could not wait for room.
        Entries put after `close` are ignored: the run is over."""
        size = len(entry["message"])
        with self._changed:
            if self._full(size):
                if not wait:
                    return False
                # Wait until half of it was taken, not for each entry taken: waking the
                # printing thread once per batch keeps both threads' switching cheap.
                while not self._closed and self._full(size, self._max_lines // 2):
                    self._changed.wait()
            if self._closed:
                return True
            self._entries.append(entry)
            self._chars += size
            if len(self._entries) == self._wanted_lines or (
                self._chars >= self._wanted_chars > self._chars - size
            ):
                self._changed.notify_all()
            return True

    def _full(self, size: int, max_lines: int | None = None) -> bool:
        if not self._entries:
            return False
        lines = max_lines if max_lines is not None else self._max_lines
        return len(self._entries) >= lines or self._chars + size > self._max_chars

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def take(self, max_lines: int, max_chars: int, timeout: float) -> tuple[list[Any], bool]:
        """Up to a batch of entries, and whether the buffer is closed and now empty. Waits
        up to `timeout` for a whole batch: taking a few entries at a time would make the
        printing thread and this one take turns for every few lines."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._wanted_lines, self._wanted_chars = max_lines, max_chars
            while (
                not self._closed
                and len(self._entries) < max_lines
                and self._chars < max_chars
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._changed.wait(remaining)
            batch: list[dict[str, Any]] = []
            chars = 0
            while self._entries and len(batch) < max_lines:
                size = len(self._entries[0]["message"])
                if batch and chars + size > max_chars:
                    break
                batch.append(self._entries.popleft())
                chars += size
            self._chars -= chars
            if batch and len(self._entries) <= self._max_lines // 2:
                self._changed.notify_all()
            return batch, self._closed and not self._entries


class LogShipper:
    """Collects log lines and posts them to the run's logs; never fails the flow."""

    def __init__(self, client: Client, run_id: str, *, stderr: TextIO | None = None) -> None:
        self._client = client
        self._run_id = run_id
        self._stderr = stderr or sys.stderr
        self._buffer = _Buffer(BUFFER_LINES, BUFFER_CHARS)
        self._thread = threading.Thread(target=self._ship_forever, daemon=True, name="log-shipper")
        self._lost = 0
        self._lost_reason = ""
        self._unreachable_until = 0.0
        self._run_gone = False
        # Once the API says the run is over its quota: the newest lines, and how many older
        # ones were counted instead of sent since the last send.
        self._over_quota = False
        self._tail: deque[dict[str, Any]] = deque()
        self._tail_chars = 0
        self._tail_dropped = 0
        self._tail_sent_at = 0.0

    def start(self) -> LogShipper:
        self._thread.start()
        return self

    def emit(self, level: str, message: str) -> None:
        # The timestamp is turned into text when sent: over quota most lines never are.
        entry = {"level": level, "message": truncate(message), "timestamp": datetime.now(UTC)}
        # The shipper's own thread must not wait for itself (a warning logged while it sends).
        wait = threading.current_thread() is not self._thread and self._thread.is_alive()
        if not self._buffer.put(entry, wait=wait):
            self._count_lost(1, "the log buffer was full")

    def info(self, message: str) -> None:
        self.emit("INFO", message)

    def close(self) -> None:
        """Send everything emitted so far, then stop: returns once every line was sent (or
        counted as lost, with the reason written to stderr)."""
        self._buffer.close()
        self._thread.join()

    # --- the shipping thread -------------------------------------------------------------------

    def _ship_forever(self) -> None:
        done = False
        while not done:
            if self._over_quota:
                # What is taken is not sent: take much at once, but wake before the buffer
                # is full (a full one has the printing thread waiting).
                batch, done = self._buffer.take(
                    BUFFER_LINES // 2, BUFFER_CHARS // 2, TAIL_FLUSH_SECONDS
                )
            else:
                batch, done = self._buffer.take(BATCH_LINES, BATCH_CHARS, FLUSH_INTERVAL_SECONDS)
            try:
                if self._over_quota:
                    self._keep_newest(batch)
                    if done or time.monotonic() - self._tail_sent_at >= TAIL_FLUSH_SECONDS:
                        self._send_tail()
                elif batch:
                    self._ship(batch)
            except Exception as exc:  # a bug here must not stop the shipping of later lines
                self._count_lost(len(batch), f"{type(exc).__name__}: {exc}")
        if self._lost:
            print(
                f"push-pools engine: {self._lost} log line(s) of run {self._run_id} were not "
                f"stored ({self._lost_reason})",
                file=self._stderr,
            )

    def _ship(self, batch: list[dict[str, Any]], dropped: int = 0) -> None:
        if self._run_gone:
            return  # the run was deleted: nobody can read its lines any more
        if time.monotonic() < self._unreachable_until:
            self._count_lost(len(batch) + dropped, "the API could not be reached")
            return
        if self._lost:
            note = (
                f"[push-pools] {self._lost:,} log line(s) before this one could not be "
                f"stored: {self._lost_reason}"
            )
            when = batch[0]["timestamp"] if batch else datetime.now(UTC)
            batch = [{"level": "WARNING", "message": note, "timestamp": when}, *batch]
            self._lost = 0
        self._deliver(batch, dropped)

    def _keep_newest(self, batch: list[dict[str, Any]]) -> None:
        """Over quota, the API would keep only the newest lines of what we send: keep just
        those here, and count the others."""
        for entry in batch:
            self._tail.append(entry)
            self._tail_chars += len(entry["message"])
        while self._tail and (
            len(self._tail) >= log_limits.TAIL_LINES or self._tail_chars > log_limits.TAIL_CHARS
        ):
            self._tail_chars -= len(self._tail.popleft()["message"])
            self._tail_dropped += 1

    def _send_tail(self) -> None:
        self._tail_sent_at = time.monotonic()
        if not self._tail and not self._tail_dropped:
            return
        batch, dropped = list(self._tail), self._tail_dropped
        self._tail.clear()
        self._tail_chars = self._tail_dropped = 0
        self._ship(batch, dropped=dropped)

    def _deliver(self, batch: list[dict[str, Any]], dropped: int = 0) -> None:
        batch = [_sendable(entry) for entry in batch]
        key = new_write_key()  # the same for every try of this batch: it is stored once
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                answer = self._client.add_logs(self._run_id, batch, key=key, dropped=dropped)
                if answer and answer.get("dropped"):
                    self._over_quota = True
                return
            except InvalidInput as exc:
                # Refused (too large, or a line the API will not take): nothing of it was
                # stored. Halve it until the refused line is alone.
                if len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half], dropped)
                    self._deliver(batch[half:])
                else:
                    self._deliver_refused(batch[0], exc)
                return
            except NotFound:
                self._run_gone = True
                return
            except ServerUnreachable as exc:
                # The client already retried for as long as the engine waits for the API.
                self._unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
                self._count_lost(len(batch) + dropped, exc.message)
                return
            except PushPoolsError as exc:
                if attempt == SEND_ATTEMPTS:
                    self._count_lost(len(batch) + dropped, exc.message)
                    return
                time.sleep(0.2 * 2**attempt)

    def _deliver_refused(self, entry: dict[str, Any], exc: InvalidInput) -> None:
        """In place of a line the API refuses: a line that says so, with the line's start."""
        preview = entry["message"][:200]
        note = f"[push-pools] the API refused a log line ({exc.message}); it began: {preview}"
        try:
            self._client.add_logs(
                self._run_id,
                [{**entry, "level": "WARNING", "message": truncate(note, 2_000)}],
                key=new_write_key(),
            )
        except PushPoolsError as again:
            self._count_lost(1, again.message)

    def _count_lost(self, lines: int, reason: str) -> None:
        self._lost += lines
        self._lost_reason = reason


def _sendable(entry: dict[str, Any]) -> dict[str, Any]:
    when = entry["timestamp"]
    if isinstance(when, datetime):
        return {**entry, "timestamp": when.isoformat()}
    return entry


def level_name(record: logging.LogRecord) -> str:
    """The record's level as the API knows levels: custom levels map to the standard level
    at or below them (TRACE=5 is DEBUG, NOTICE=25 is INFO)."""
    if record.levelname in LEVELS:
        return record.levelname
    name = "DEBUG"
    for candidate in LEVELS:
        if logging.getLevelName(candidate) <= record.levelno:
            name = candidate
    return name


class ShippingHandler(logging.Handler):
    """A logging handler that forwards records to a LogShipper."""

    def __init__(self, shipper: LogShipper) -> None:
        super().__init__()
        self._shipper = shipper
        self.setFormatter(logging.Formatter("%(name)s - %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._shipper.emit(level_name(record), self.format(record))
        except Exception:  # a logging handler must never raise into user code
            self.handleError(record)
