"""Bounded input and no silent log loss: body limit, line length, per-run quota, paging,
the engine's log shipper, and idempotent engine writes (issue 10)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import deploy, wait_for_state

import push_pools
from push_pools.client import Client
from push_pools.errors import InvalidInput, ServerUnreachable
from push_pools.log_limits import MAX_MESSAGE_CHARS
from push_pools.logs import LogShipper, ShippingHandler

pytestmark = pytest.mark.store

QUIET = {"job_variables": {"stream_output": False}}
PUSH_POOLS = Path(sys.executable).parent / "push-pools"


def all_logs(client, run_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    while page := client.get_logs(run_id, after=lines[-1]["id"] if lines else 0, limit=10_000):
        lines.extend(page)
    return lines


@contextlib.contextmanager
def worker_process(server: Any, home: Path, output: Path) -> Iterator[None]:
    env = {**os.environ, "PUSH_POOLS_API_URL": server.api_url, "PUSH_POOLS_HOME": str(home)}
    # The worker and its engines run the push_pools under test, wherever it is installed from.
    source_root = str(Path(push_pools.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    with output.open("w") as sink:
        worker = subprocess.Popen(
            [str(PUSH_POOLS), "worker", "start", "--pool", "pool"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def add_flow(flow_dir: Path, source: str) -> None:
    with (flow_dir / "flows.py").open("a") as handle:
        handle.write("\n\n" + source)


# About 30 s on an idle 2-core machine; the bounds leave room for a machine many times busier.
@pytest.mark.timeout(900)
def test_a_flow_printing_50_mb_keeps_its_start_its_end_and_says_what_was_dropped(
    client, server, home, flow_dir, tmp_path
) -> None:
    add_flow(
        flow_dir,
        "@flow(log_prints=True)\n"
        "def firehose() -> None:\n"
        "    filler = 'x' * 90\n"
        "    for i in range(524_288):\n"
        "        print(f'{i:08d} {filler}')\n"
        "    print('the very last line')\n",
    )
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "firehose", **QUIET)
    started = time.monotonic()
    run = client.create_run(deployment["id"], {})
    # The worker in its own process, as in production: its reading of the flow's 50 MB of
    # output does not compete with the API server for this process's interpreter.
    with worker_process(server, home, tmp_path / "worker.out"):
        done = wait_for_state(client, run["id"], timeout=800)
    print(f"50 MB flow took {time.monotonic() - started:.1f}s")
    assert done["state"] == "COMPLETED", done["state_message"]
    lines = all_logs(client, run["id"])
    messages = [line["message"] for line in lines]
    assert messages[-1].endswith("flow completed")
    assert messages[-2] == "the very last line"
    assert messages[1].startswith("00000000 ")  # after "running flow ..."
    [dropped] = [m for m in messages if "log lines dropped" in m]
    count = int(re.search(r"([\d,]+) log lines dropped", dropped).group(1).replace(",", ""))
    # Every line printed is either stored or counted (2 engine lines besides the prints).
    assert len(lines) - 1 + count == 524_288 + 1 + 2


# --- helpers: a proxy that loses answers ---------------------------------------------------------


class AnswerLosingProxy:
    """A TCP proxy in front of the API that passes the first `lose` requests whose request
    line contains `match` on to the server and then drops the connection instead of returning
    the answer: the request was applied, and the client cannot know it."""

    def __init__(self, upstream_port: int, match: bytes, lose: int = 1) -> None:
        self.upstream_port = upstream_port
        self.match = match
        self.lose = lose
        self.forwarded: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            while request := _read_http_message(conn):
                request_line = request.split(b"\r\n", 1)[0]
                self.forwarded.append(request_line)
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                    upstream.sendall(request)
                    answer = _read_http_message(upstream)
                if self.match in request_line and self.lose > 0:
                    self.lose -= 1
                    return  # the answer is lost with the connection
                conn.sendall(answer)


def _read_http_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def running_run(client, flow_dir) -> dict[str, Any]:
    """A run claimed by a worker (Pending), ready for an engine's writes."""
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    run = client.create_run(deployment["id"], {})
    client.poll("pool", {"worker_name": "w"}, timeout=10)
    return run


def engine_client_through(proxy: AnswerLosingProxy) -> Client:
    # The engine's client: it retries while the API cannot be reached.
    return Client(f"http://127.0.0.1:{proxy.port}/api", retry_unreachable_seconds=10)


# --- idempotent writes ---------------------------------------------------------------------------


def test_a_log_post_retried_after_its_answer_was_lost_stores_its_lines_once(
    client, server, running_run
) -> None:
    proxy = AnswerLosingProxy(server.port, b"/logs")
    try:
        with engine_client_through(proxy) as engine_client:
            answer = engine_client.add_logs(
                running_run["id"], [{"message": f"line {i}"} for i in range(10)]
            )
    finally:
        proxy.close()
    assert sum(b"/logs" in line for line in proxy.forwarded) == 2, "the client did not retry"
    assert answer == {"count": 10, "dropped": 0}
    messages = [entry["message"] for entry in client.get_logs(running_run["id"])]
    assert messages == [f"line {i}" for i in range(10)]


def test_a_log_post_sent_again_with_its_key_is_answered_alike_and_stored_once(
    client, running_run
) -> None:
    lines = [{"message": "once"}, {"message": "only"}]
    first = client.add_logs(running_run["id"], lines, key="batch-1")
    again = client.add_logs(running_run["id"], lines, key="batch-1")
    other = client.add_logs(running_run["id"], lines, key="batch-2")
    assert first == again == other == {"count": 2, "dropped": 0}
    assert [e["message"] for e in client.get_logs(running_run["id"])] == ["once", "only"] * 2


def test_a_key_used_for_a_state_is_refused_on_a_log_batch(client, server, running_run) -> None:
    run_id = running_run["id"]
    headers = {"Idempotency-Key": "shared-key"}
    url = f"{server.api_url}/flow_runs/{run_id}"
    assert httpx.post(f"{url}/state", json={"type": "RUNNING"}, headers=headers).is_success
    refused = httpx.post(f"{url}/logs", json=[{"message": "x"}], headers=headers)
    assert refused.status_code == 409
    assert "already used for a state write" in refused.json()["detail"]
    assert client.get_logs(run_id) == []


def test_a_state_post_retried_after_its_answer_was_lost_does_not_bump_run_count(
    client, server, running_run
) -> None:
    proxy = AnswerLosingProxy(server.port, b"/state")
    try:
        with engine_client_through(proxy) as engine_client:
            decision = engine_client.set_state(running_run["id"], {"type": "RUNNING"})
    finally:
        proxy.close()
    assert sum(b"/state" in line for line in proxy.forwarded) == 2, "the client did not retry"
    assert decision["accepted"] is True
    run = client.get_run(running_run["id"])
    assert run["state"] == "RUNNING"
    assert run["run_count"] == 1
    assert [s["type"] for s in client.run_states(run["id"])].count("RUNNING") == 1


def test_a_post_without_a_key_is_not_sent_again_after_its_answer_was_lost(
    client, server, running_run
) -> None:
    # Creating a run carries no key: sending it again could create a second run.
    proxy = AnswerLosingProxy(server.port, b"/runs")
    try:
        with engine_client_through(proxy) as engine_client, pytest.raises(ServerUnreachable):
            engine_client.create_run(running_run["deployment_id"], {})
    finally:
        proxy.close()
    assert sum(b"/runs" in line for line in proxy.forwarded) == 1
    assert len(client.list_runs()) == 2  # the fixture's run and the one created once


# --- body limit ----------------------------------------------------------------------------------


@pytest.fixture
def small_limit_server(server_factory, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PUSH_POOLS_MAX_REQUEST_BYTES", "50000")
    return server_factory()


def test_a_body_over_the_limit_is_refused_with_413_and_changes_nothing(
    small_limit_server, flow_dir
) -> None:
    with Client(small_limit_server.api_url) as client:
        client.create_work_pool({"name": "pool", "type": "process"})
        run = client.create_run(deploy(client, flow_dir, "greet")["id"], {})
        big = [{"message": "y" * 1000} for _ in range(60)]
        with pytest.raises(InvalidInput) as refused:
            client.add_logs(run["id"], big)
        assert "at most 50,000 bytes" in refused.value.message

        # Without a Content-Length (chunked), the body is counted as it arrives.
        def chunks() -> Iterator[bytes]:
            yield b"["
            for i in range(60):
                yield (b"," if i else b"") + b'{"message": "' + b"z" * 1000 + b'"}'
            yield b"]"

        with httpx.Client() as raw:
            answer = raw.post(
                f"{small_limit_server.api_url}/flow_runs/{run['id']}/logs",
                content=chunks(),
                headers={"content-type": "application/json"},
            )
        assert answer.status_code == 413
        assert answer.json()["code"] == "payload_too_large"
        assert client.get_logs(run["id"]) == []
        assert client.get_run(run["id"])["state"] == "SCHEDULED"  # the server still answers


def test_a_bad_line_refuses_its_whole_batch_and_stores_nothing(client, running_run) -> None:
    lines = [{"message": "fine"}, {"level": "LOUD", "message": "bad level"}]
    with pytest.raises(InvalidInput, match="unknown log level 'LOUD'"):
        client.add_logs(running_run["id"], lines)
    assert client.get_logs(running_run["id"]) == []
    client.add_logs(running_run["id"], [{"message": "after"}])
    assert [e["message"] for e in client.get_logs(running_run["id"])] == ["after"]


# --- long lines ----------------------------------------------------------------------------------


def test_a_150000_character_line_is_kept_truncated_and_its_neighbours_are_kept(
    client, running_run
) -> None:
    lines = [{"message": f"line {i}"} for i in range(200)]
    lines[100] = {"message": "L" * 150_000}
    assert client.add_logs(running_run["id"], lines)["count"] == 200
    stored = [e["message"] for e in client.get_logs(running_run["id"])]
    assert len(stored) == 200
    assert stored[99] == "line 99" and stored[101] == "line 101"
    assert len(stored[100]) <= MAX_MESSAGE_CHARS
    assert stored[100].startswith("L" * 1000)
    assert stored[100].endswith("[... truncated: 150,000 characters, the last 84,528 not shown]")


def test_the_engine_truncates_and_splits_what_the_api_refuses_and_drops_nothing_silently(
    small_limit_server, flow_dir
) -> None:
    # With a 50 kB body limit, the shipper's batches are refused (413): it halves them until
    # they pass; a single line over the limit even when truncated (65,536 characters) is
    # replaced by a line that says the API refused it.
    with Client(small_limit_server.api_url) as client:
        client.create_work_pool({"name": "pool", "type": "process"})
        run = client.create_run(deploy(client, flow_dir, "greet")["id"], {})
        shipper = LogShipper(client, run["id"]).start()
        for i in range(300):
            shipper.info(f"{i:04d} " + "w" * 995)
            if i == 150:
                shipper.info("H" * 150_000)
        shipper.close()
        stored = [e["message"] for e in all_logs(client, run["id"])]
    assert len(stored) == 301
    assert [m[:4] for m in stored[:151]] == [f"{i:04d}" for i in range(151)]
    assert stored[151].startswith("[push-pools] the API refused a log line (the request body")
    assert "HHHH" in stored[151]
    assert [m[:4] for m in stored[152:]] == [f"{i:04d}" for i in range(151, 300)]


def test_custom_log_levels_are_shipped_as_the_standard_level_below_them(
    client, running_run
) -> None:
    logging.addLevelName(5, "TRACE")
    logging.addLevelName(25, "NOTICE")
    shipper = LogShipper(client, running_run["id"]).start()
    handler = ShippingHandler(shipper)
    logger = logging.getLogger("test.custom.levels")
    logger.addHandler(handler)
    logger.setLevel(1)
    logger.propagate = False
    try:
        logger.log(5, "fine detail")
        logger.log(25, "worth a look")
    finally:
        logger.removeHandler(handler)
        shipper.close()
    stored = [(e["level"], e["message"]) for e in client.get_logs(running_run["id"])]
    assert stored == [
        ("DEBUG", "test.custom.levels - fine detail"),
        ("INFO", "test.custom.levels - worth a look"),
    ]


# --- quota and paging ----------------------------------------------------------------------------


def test_over_its_quota_a_run_keeps_its_first_and_newest_lines_and_counts_the_rest(
    client, server, running_run
) -> None:
    from push_pools.models import LogIn
    from push_pools.store import logs as log_store

    quota = log_store.Quota(lines=10, chars=100_000, tail_lines=4, tail_chars=10_000)
    run_id = running_run["id"]

    def add(messages: list[str], dropped_by_client: int = 0) -> log_store.Added:
        with server.store.session() as session:
            return log_store.add_logs(
                session,
                run_id,
                [LogIn(message=m) for m in messages],
                quota,
                dropped_by_client=dropped_by_client,
            )

    def stored() -> list[str]:
        return [e["message"] for e in client.get_logs(run_id)]

    add([f"line {i}" for i in range(8)])
    assert add([f"line {i}" for i in range(8, 13)]) == log_store.Added(count=5, dropped=4)
    [marker] = [m for m in stored() if "dropped" in m]
    assert stored() == [*(f"line {i}" for i in range(6)), marker, "line 10", "line 11", "line 12"]
    assert marker.startswith("[push-pools] 4 log lines dropped: this run is over its log quota")

    add(["line 13", "line 14"])
    lines = stored()
    assert lines[6].startswith("[push-pools] 6 log lines dropped")
    assert lines[7:] == ["line 12", "line 13", "line 14"]
    # The engine, once told the run is over its quota, counts lines instead of sending them.
    add(["line 200"], dropped_by_client=100)
    lines = stored()
    assert lines[:6] == [f"line {i}" for i in range(6)]
    assert lines[6].startswith("[push-pools] 107 log lines dropped")
    assert lines[7:] == ["line 13", "line 14", "line 200"]
    # Every line sent is either kept or counted.
    assert (len(lines) - 1) + 107 == 8 + 5 + 2 + 1 + 100


def test_logs_come_in_pages_bounded_in_bytes_and_the_cli_pages_through_them(
    client, cli, running_run
) -> None:
    run_id = running_run["id"]
    client.add_logs(run_id, [{"message": f"{i:05d} " + "p" * 994} for i in range(2500)])
    page = client.get_logs(run_id, limit=10_000, max_bytes=5_000)
    assert [e["message"][:5] for e in page] == ["00000", "00001", "00002", "00003", "00004"]
    # A line longer than the page still comes alone, so paging always moves on.
    assert len(client.get_logs(run_id, after=page[-1]["id"], max_bytes=10)) == 1
    # The default page holds about a megabyte: 2.5 MB of lines take several pages.
    assert len(client.get_logs(run_id, limit=10_000)) < 1_001

    shown = cli("flow-run", "logs", run_id)
    assert shown.exit_code == 0, shown.stderr
    printed = [re.search(r"INFO +(\d{5}) ", line).group(1) for line in shown.stdout.splitlines()]
    assert printed == [f"{i:05d}" for i in range(2500)]
