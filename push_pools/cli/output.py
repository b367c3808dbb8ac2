"""Printing for the CLI: JSON for scripts, rich tables and key-value views for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    # Piped output is read by people in logs and by grep: don't squeeze tables to 80 columns.
    width = None if (sys.stderr if stderr else sys.stdout).isatty() else 200
    return Console(highlight=False, soft_wrap=True, width=width, stderr=stderr)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


def print_fields(title: str, fields: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]{title}[/bold]")
    width = max((len(k) for k in fields), default=0)
    for key, value in fields.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, indent=2, default=str)
        out.print(f"  {key.ljust(width)}  {'' if value is None else value}", markup=False)


def next_runs_text(deployment: dict[str, Any], count: int = 3) -> str:
    """A deployment's next fire times in local time, e.g. "2026-12-08 02:00:00 (in 22h)"."""
    times = deployment.get("next_runs") or []
    if not times:
        return "paused" if deployment.get("paused") and deployment.get("schedules") else "none"
    return ", ".join(f"{short_time(t)} ({ago(t)})" for t in times[:count])


def ago(timestamp: str | None) -> str:
    if not timestamp:
        return "never"
    moment = datetime.fromisoformat(timestamp)
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def short_time(timestamp: str | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromisoformat(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


STATE_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "red",
    "RUNNING": "blue",
    "PENDING": "cyan",
    "SCHEDULED": "yellow",
    "LATE": "yellow",
    "CANCELLING": "magenta",
    "CANCELLED": "magenta",
}


def styled_state(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def parse_key_values(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """`k=v` options; values that parse as JSON keep their type (3, true, {"a": 1})."""
    from push_pools.errors import InvalidInput

    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} '{pair}' is not of the form key=value")
        try:
            result[key] = json.loads(raw)
        except ValueError:
            result[key] = raw
    return result
