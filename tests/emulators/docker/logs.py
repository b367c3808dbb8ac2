"""Container logs: what a container wrote, and the selection a logs request asks for.

Each line is kept with the time it was read and its stream (1 stdout, 2 stderr). A container
without a TTY answers in multiplexed frames; with a TTY, raw bytes (its stderr joined stdout).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from tests.emulators.docker.exceptions import InvalidParameter
from tests.emulators.docker.wire import ApiRequest, frame, rfc3339

__all__ = ["LogEntry", "LogQuery", "parse_time"]


@dataclass(frozen=True)
class LogEntry:
    ns: int
    stream: int  # 1 stdout, 2 stderr
    text: str  # one line, without its newline


@dataclass(frozen=True)
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    timestamps: bool = False
    tail: int | None = None  # None: all
    since_ns: int | None = None
    until_ns: int | None = None

    @classmethod
    def from_request(cls, request: ApiRequest) -> LogQuery:
        tail_text = request.param("tail", "all") or "all"
        try:
            tail = None if tail_text == "all" else max(int(tail_text), 0)
        except ValueError as exc:
            raise InvalidParameter(f"invalid tail: {tail_text}") from exc
        if not request.flag("stdout") and not request.flag("stderr"):
            raise InvalidParameter("you must choose at least one stream")
        return cls(
            stdout=request.flag("stdout"),
            stderr=request.flag("stderr"),
            follow=request.flag("follow"),
            timestamps=request.flag("timestamps"),
            tail=tail,
            since_ns=parse_time(request.param("since")),
            until_ns=parse_time(request.param("until")),
        )

    def selects(self, entry: LogEntry) -> bool:
        if not (self.stdout if entry.stream == 1 else self.stderr):
            return False
        if self.since_ns is not None and entry.ns < self.since_ns:
            return False
        return self.until_ns is None or entry.ns <= self.until_ns

    def encode(self, entry: LogEntry, *, tty: bool) -> bytes:
        text = f"{rfc3339(entry.ns)} {entry.text}" if self.timestamps else entry.text
        payload = (text + "\n").encode()
        return payload if tty else frame(entry.stream, payload)


def parse_time(text: str | None) -> int | None:
    """`since`/`until`: Unix seconds (with a fraction) or RFC 3339; 0 or empty is unset."""
    if not text or text == "0":
        return None
    try:
        return int(Decimal(text) * 1_000_000_000)  # exact: a log line's own time selects it
    except InvalidOperation:
        pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError as exc:
        raise InvalidParameter(f"invalid time value: {text}") from exc
