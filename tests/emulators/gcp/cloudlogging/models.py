"""Log entries, kept as the JSON entries:list returns, in the order they were written."""

from __future__ import annotations

import itertools
import json
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

from tests.emulators.gcp.cloudlogging.filters import SEVERITIES, compile_filter
from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.wire import rfc3339

__all__ = ["LoggingBackend"]


class LoggingBackend:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.entries: list[dict[str, Any]] = []
        self._sequence = itertools.count()

    def write_line(
        self,
        project_id: str,
        log_id: str,
        resource: dict[str, Any],
        labels: dict[str, str],
        line: str,
    ) -> dict[str, Any]:
        """One line a container printed. A JSON object line is a structured entry (its
        `severity` and `message` taken as Cloud Run's logging agent takes them)."""
        now = rfc3339(self.clock())
        entry: dict[str, Any] = {
            "logName": f"projects/{project_id}/logs/{urllib.parse.quote(log_id, safe='')}",
            "resource": resource,
            "labels": labels,
            "timestamp": now,
            "receiveTimestamp": now,
            "severity": "DEFAULT",
            "insertId": f"{next(self._sequence):08x}{secrets.token_hex(4)}",
        }
        structured = _json_object(line)
        if structured is not None:
            severity = str(structured.pop("severity", "DEFAULT")).upper()
            entry["severity"] = severity if severity in SEVERITIES else "DEFAULT"
            entry["jsonPayload"] = structured
        else:
            entry["textPayload"] = line
        self.entries.append(entry)
        return entry

    def list_entries(
        self, project_ids: list[str], filter_text: str, order_by: str
    ) -> list[dict[str, Any]]:
        predicate = compile_filter(filter_text)
        prefixes = tuple(f"projects/{p}/" for p in project_ids)
        chosen = [e for e in self.entries if e["logName"].startswith(prefixes) and predicate(e)]
        order = order_by.strip().lower()
        if order in ("", "timestamp", "timestamp asc"):
            return chosen
        if order == "timestamp desc":
            return list(reversed(chosen))
        raise ApiError("INVALID_ARGUMENT", f"Invalid order_by: {order_by}")


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
