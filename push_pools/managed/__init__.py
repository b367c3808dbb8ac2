"""Managed pools: flow runs on the server's own host, each in a sandbox directory, no worker.

The executor (push_pools.executors.managed) and the sandbox process (push_pools.managed.sandbox)
talk only through files, so a run keeps going, and can still be inspected and cancelled, after
the server that started it was killed and restarted. Layout under the root directory
(settings.home_dir() / "managed" by default)::

    runs/<infrastructure id>/   one per submitted run; the id is the name `pp-<run id>-<attempt>`
        submitted       O_EXCL marker: whoever creates it starts the sandbox, others adopt it
        request.json    (0600) the run's environment and job configuration; holds secrets
        sandbox.pid     "<pid> <start time>" of the sandbox process
        pid             "<pid> <start time>" of the engine child, also its process group id
        cancel.json     written by cancel() before signalling: says the SIGTERM is a cancel
        result.json     {"exit_code", "reason", "message"}, written once, atomically, at the end
        output.log      what the sandbox, a failed installer and the engine printed
        work/  tmp/     the run's working directory (and HOME), and its TMPDIR
    envs/<key> -> .<key>.<random>/   cached virtual environments, see environments.py

Everything here is standard library only: the sandbox must start fast and must not depend on
the server's heavier imports.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from collections import deque
from pathlib import Path
from typing import Any, TypeGuard

__all__ = [
    "CANCEL",
    "OUTPUT",
    "PID",
    "REQUEST",
    "RESULT",
    "SANDBOX_PID",
    "SUBMITTED",
    "ProcessRef",
    "is_alive",
    "read_json",
    "read_pid_file",
    "signal_group",
    "tail",
    "write_atomic",
    "write_pid_file",
]

SUBMITTED = "submitted"
REQUEST = "request.json"
SANDBOX_PID = "sandbox.pid"
PID = "pid"
CANCEL = "cancel.json"
RESULT = "result.json"
OUTPUT = "output.log"

ProcessRef = tuple[int, int | None]  # (pid, start time in clock ticks since boot, if known)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write via a temporary file and os.replace, so readers never see half a file.

    The temporary file is created with `mode` already set: request.json holds the API key and
    resolved credentials and must never exist, even briefly, with wider permissions.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def start_time(pid: int) -> int | None:
    """The process's start time from /proc (None where there is no /proc).

    Stored next to each pid so that a pid reused by an unrelated process, e.g. after a reboot,
    is not mistaken for the run's process.
    """
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()


def write_pid_file(path: Path, pid: int) -> None:
    started = start_time(pid)
    write_atomic(path, f"{pid} {started if started is not None else ''}".strip() + "\n", 0o644)


def read_pid_file(path: Path) -> ProcessRef | None:
    try:
        parts = path.read_text().split()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else None
    except (IndexError, ValueError):
        return None


def is_alive(ref: ProcessRef | None) -> TypeGuard[ProcessRef]:
    """Whether the process exists, is not a zombie, and is the one that was recorded (so a
    `ref` it is true for is not None, which type checkers then know)."""
    if ref is None:
        return False
    pid, started = ref
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        # Without /proc, trust os.kill; with it, the process vanished since os.kill.
        return not Path("/proc").is_dir()
    # A zombie has exited and only waits to be reaped; "X" is dead.
    if fields[0] in ("Z", "X"):
        return False
    if started is not None and len(fields) >= 20 and fields[19] != str(started):
        return False
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, limit: int) -> list[str]:
    """The last `limit` lines of a file, read from its end so a huge log costs little."""
    if limit <= 0:
        return []
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            chunk = 64 * 1024
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= limit:
                step = min(chunk, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except (FileNotFoundError, NotADirectoryError):
        return []
    lines: deque[str] = deque(maxlen=limit)
    for line in data.decode("utf-8", errors="replace").splitlines():
        lines.append(line)
    return list(lines)
