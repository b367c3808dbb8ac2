"""Rendering pages with Jinja2, imported on the first page asked for (not at server start)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    import jinja2

STATUS_ICONS = {"READY": "●", "NOT_READY": "●", "PAUSED": "❚❚"}


def ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size or unit == "s":
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "now"


def clock(when: datetime | None) -> str:
    if when is None:
        return "—"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@cache
def inline(name: str) -> str:
    """A static file's text, for the page itself: the CSS and the small live-update script
    come with each page, so a first visit paints without waiting for more requests (measured:
    benchmarks/README.md, web UI)."""
    from push_pools.ui import STATIC_DIR

    return (STATIC_DIR / name).read_text(encoding="utf-8")


@cache
def environment() -> jinja2.Environment:
    import jinja2

    from push_pools.ui import schedule_words

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("push_pools.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=ago,
        clock=clock,
        pretty=pretty,
        in_words=schedule_words.in_words,
        wall_clock=schedule_words.wall_clock,
    )
    env.globals["zone_of"] = schedule_words.zone_of
    env.globals["status_icons"] = STATUS_ICONS
    env.globals["inline"] = inline
    return env


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = (
        environment()
        .get_template(template)
        .render(request=request, path=request.url.path, **context)
    )
    return HTMLResponse(html, status_code=status)
