"""A warm process that forks one child per flow run, so a run skips interpreter start-up.

Starting `python -m push_pools.engine` costs ~0.5 s of CPU (interpreter, httpx, pydantic);
forking a process that already imported them costs a few milliseconds. Each run is still its own
process (own pid, session, working directory and environment), which is what the worker needs.

Protocol over a Unix socket pair, one JSON object per message:
  worker -> server: {"env": {...}, "cwd": "..."} with the write end of an output pipe attached
                    (SCM_RIGHTS); server -> worker: {"pid": N} or {"error": "..."}
  server -> worker, whenever a child ends: {"exited": N, "code": C}
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import threading
from typing import Any

from push_pools.errors import PushPoolsError

MAX_MESSAGE = 1 << 20


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


class ForkServerClient:
    """The worker's side: starts the fork server and asks it for processes."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self._process = subprocess.Popen(
            [sys.executable, "-m", "push_pools.executors.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self._request_lock = threading.Lock()
        self._replies: list[dict[str, Any]] = []
        self._reply_ready = threading.Condition()
        self._exits: dict[int, int] = {}
        self._exit_events: dict[int, threading.Event] = {}
        self._exits_lock = threading.Lock()
        self.alive = True
        threading.Thread(target=self._read_forever, daemon=True, name="forkserver-read").start()

    def spawn(self, env: dict[str, str], cwd: str, output_fd: int) -> int:
        """Fork a child running the engine with `env` in `cwd`, its output going to output_fd."""
        with self._request_lock:
            if not self.alive:
                raise PushPoolsError("the worker's fork server is not running")
            _send(self._sock, {"env": env, "cwd": cwd}, [output_fd])
            with self._reply_ready:
                self._reply_ready.wait_for(lambda: self._replies or not self.alive, timeout=30)
                if not self._replies:
                    raise PushPoolsError("the worker's fork server did not answer")
                reply = self._replies.pop(0)
        if "error" in reply:
            raise PushPoolsError(f"could not start the flow run process: {reply['error']}")
        pid = int(reply["pid"])
        with self._exits_lock:
            self._exit_events.setdefault(pid, threading.Event())
        return pid

    def wait(self, pid: int, timeout: float | None = None) -> int | None:
        with self._exits_lock:
            event = self._exit_events.setdefault(pid, threading.Event())
        if not event.wait(timeout):
            return None
        with self._exits_lock:
            return self._exits.get(pid)

    def poll(self, pid: int) -> int | None:
        with self._exits_lock:
            return self._exits.get(pid)

    def forget(self, pid: int) -> None:
        with self._exits_lock:
            self._exits.pop(pid, None)
            self._exit_events.pop(pid, None)

    def close(self) -> None:
        self.alive = False
        self._sock.close()
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def _read_forever(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._dispatch(json.loads(line))
        except OSError:
            pass
        self.alive = False
        with self._reply_ready:
            self._reply_ready.notify_all()
        # Children of a dead fork server cannot be waited for: report them as lost.
        with self._exits_lock:
            for pid, event in self._exit_events.items():
                if not event.is_set():
                    self._exits.setdefault(pid, -1)
                    event.set()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            pid = int(message["exited"])
            with self._exits_lock:
                self._exits[pid] = int(message["code"])
                self._exit_events.setdefault(pid, threading.Event()).set()
            return
        with self._reply_ready:
            self._replies.append(message)
            self._reply_ready.notify_all()


# --- the server process ------------------------------------------------------------------------


def _warm_up() -> None:
    # Everything a run imports anyway, loaded once here instead of once per run.
    import push_pools.deploy.entrypoints  # noqa: F401
    import push_pools.deploy.steps  # noqa: F401
    import push_pools.engine  # noqa: F401
    import push_pools.flows  # noqa: F401
    from push_pools.client import Client

    Client(api_url="http://127.0.0.1:1/api").close()  # imports httpx and its transports
    import pydantic  # noqa: F401


def _run_child(env: dict[str, str], cwd: str, output_fd: int, sock: socket.socket) -> None:
    """In the forked child: become a fresh flow-run process and run the engine."""
    code = 1
    try:
        sock.close()
        os.setsid()
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.path[0] = cwd
        from push_pools import engine

        code = engine.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    _warm_up()
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    buffer = b""
    pending_fds: list[int] = []
    children: set[int] = set()
    while True:
        for _key, _mask in selector.select(timeout=0.02):
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 16)
            if not data:
                return  # the worker is gone; children keep running in their own sessions
            buffer += data
            pending_fds.extend(fds)
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                output_fd = pending_fds.pop(0)
                try:
                    pid = os.fork()
                except OSError as exc:
                    os.close(output_fd)
                    _send(sock, {"error": str(exc)})
                    continue
                if pid == 0:
                    selector.close()
                    _run_child(request["env"], request["cwd"], output_fd, sock)
                os.close(output_fd)
                children.add(pid)
                _send(sock, {"pid": pid})
        for pid in list(children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                children.discard(pid)
                continue
            if done:
                children.discard(pid)
                _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve(int(sys.argv[1]))
