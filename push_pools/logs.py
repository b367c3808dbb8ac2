"""Shipping a run's log lines to the API in batches, from a background thread."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Any

from push_pools.client import Client
from push_pools.errors import PushPoolsError

BATCH_SIZE = 200
FLUSH_INTERVAL_SECONDS = 0.25


class LogShipper:
    """Collects log lines and posts them to the run's logs; never blocks or fails the flow."""

    def __init__(self, client: Client, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._ship_forever, daemon=True, name="log-shipper")

    def start(self) -> LogShipper:
        self._thread.start()
        return self

    def emit(self, level: str, message: str) -> None:
        self._queue.put(
            {"level": level, "message": message, "timestamp": datetime.now(UTC).isoformat()}
        )

    def info(self, message: str) -> None:
        self.emit("INFO", message)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is left, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _ship_forever(self) -> None:
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=FLUSH_INTERVAL_SECONDS)
            except queue.Empty:
                continue
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                if len(batch) >= BATCH_SIZE:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._client.add_logs(self._run_id, batch)
                except PushPoolsError:
                    pass  # logs are best effort: a flaky API must not fail the user's flow


class ShippingHandler(logging.Handler):
    """A logging handler that forwards records to a LogShipper."""

    def __init__(self, shipper: LogShipper) -> None:
        super().__init__()
        self._shipper = shipper
        self.setFormatter(logging.Formatter("%(name)s - %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._shipper.emit(record.levelname, self.format(record))
        except Exception:  # a logging handler must never raise into user code
            self.handleError(record)
