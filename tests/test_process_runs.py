"""Flow runs end to end: a live server, process workers, real flow-run subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import deploy, wait_for_state

from push_pools.errors import InvalidInput

pytestmark = pytest.mark.store

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PUSH_POOLS = Path(sys.executable).parent / "push-pools"


# --- helpers -----------------------------------------------------------------------------------


def make_pool(client, name: str = "pool", **extra: Any) -> dict[str, Any]:
    return client.create_work_pool({"name": name, "type": "process", **extra})


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def state_types(client, run_id: str) -> list[str]:
    return [s["type"] for s in client.run_states(run_id)]


def log_text(client, run_id: str) -> str:
    return "\n".join(entry["message"] for entry in client.get_logs(run_id))


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_all(client, run_ids: list[str], timeout: float = 45.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    return [
        wait_for_state(client, run_id, timeout=max(0.1, deadline - time.monotonic()))
        for run_id in run_ids
    ]


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still in the process table: gone for our purposes only if it is a zombie.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def add_flows(directory: Path, source: str) -> None:
    with (directory / "flows.py").open("a") as handle:
        handle.write("\n\n" + source)


# Prints over about a second and a half and stays a moment after its last line: a run that
# watchers can catch while it runs, and whose lines are all shipped before it ends.
CHATTY = (
    "@flow(log_prints=True)\n"
    "def chatty(name: str = 'you') -> str:\n"
    "    for i in range(4):\n"
    "        print(f'tick {i} for {name}')\n"
    "        time.sleep(0.25)\n"
    "    print('last words')\n"
    "    time.sleep(0.3)\n"
    "    return 'said'\n"
)


@pytest.fixture
def start_worker(worker_factory, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """In-process workers whose idle long polls are short, so that stopping them is quick.

    A worker's stop waits for its heartbeat long poll (2 s by default) to return; cancel
    requests wake that poll at once, so a shorter one changes nothing the tests look at.
    The cancellation test uses the real defaults.
    """
    monkeypatch.setattr("push_pools.worker.WATCH_INTERVAL_SECONDS", 0.5)

    def start(pool: str = "pool", **kwargs: Any) -> Any:
        kwargs.setdefault("poll_wait_seconds", 0.5)
        return worker_factory(pool, **kwargs)

    return start


# Flows deployed with this keep the worker from echoing their output into the captured stdout,
# so what a CLI command printed is told apart from what the worker streamed.
QUIET = {"job_variables": {"stream_output": False}}


# --- 1. lifecycle ------------------------------------------------------------------------------


def test_run_goes_through_states_and_keeps_result_and_logs(
    client, cli, flow_dir, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "greet")
    start_worker("pool")
    run = client.create_run(deployment["id"], {"parameters": {"name": "Ada", "times": 2}})
    assert run["state"] == "SCHEDULED"

    done = wait_for_state(client, run["id"])
    assert done["state"] == "COMPLETED", done["state_message"]
    assert state_types(client, run["id"]) == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    assert done["result"] == "greeted Ada"
    assert done["run_count"] == 1
    assert ts(done["scheduled_time"]) <= ts(done["start_time"]) <= ts(done["end_time"])
    assert done["infrastructure_id"].startswith("pid:")

    messages = wait_for(
        lambda: (text := log_text(client, run["id"])).count("hello Ada") == 2 and text,
        5,
        "both printed lines in the logs",
    )
    assert "running flow 'greet'" in messages

    shown = cli("flow-run", "logs", run["id"])
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.count("hello Ada") == 2
    as_json = cli("flow-run", "logs", run["id"], "--json")
    assert [e["message"] for e in as_json.json()].count("hello Ada") == 2


# --- 2. deployment run from the CLI ------------------------------------------------------------


def test_cli_deployment_run_watch_and_bad_parameter(client, cli, flow_dir, start_worker) -> None:
    add_flows(flow_dir, CHATTY)
    make_pool(client)
    deploy(client, flow_dir, "greet", **QUIET)
    deploy(client, flow_dir, "chatty", **QUIET)
    start_worker("pool")

    bad = cli("deployment", "run", "greet/test", "--param", "times=abc", "--watch")
    assert bad.exit_code != 0
    assert "'times'" in bad.stderr
    assert "integer" in bad.stderr
    assert "Traceback" not in bad.stderr
    listed = cli("flow-run", "ls", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert listed.json() == []

    good = cli("deployment", "run", "greet/test", "--param", "name=Ada", "--watch")
    assert good.exit_code == 0, good.stdout + good.stderr
    [run] = client.list_runs()
    assert run["id"] in good.stdout.splitlines()  # alone on its line, for scripts
    assert f"{run['name']}: COMPLETED" in good.stdout
    assert run["parameters"] == {"name": "Ada"}
    assert run["state"] == "COMPLETED"
    assert run["result"] == "greeted Ada"
    assert "hello Ada" in wait_for(lambda: log_text(client, run["id"]), 5, "the run's logs")

    # The run's log lines are printed while watching (a flow that lives long enough to be
    # watched; test_watch_prints_every_log_line_of_a_run covers a burst at the end).
    watched = cli("deployment", "run", "chatty/test", "--param", "name=Ada", "--watch")
    assert watched.exit_code == 0, watched.stdout + watched.stderr
    for line in ("INFO    tick 0 for Ada", "INFO    tick 3 for Ada", "INFO    last words"):
        assert line in watched.stdout
    assert "RUNNING" in watched.stdout and "COMPLETED" in watched.stdout


# --- 3. job variables reach the process --------------------------------------------------------


def test_env_job_variables_are_merged_pool_deployment_run(
    client, cli, flow_dir, start_worker
) -> None:
    template = client.default_base_job_template("process")
    template["variables"]["properties"]["env"]["default"] = {"POOL_KEY": "p", "MY_KEY": "pool"}
    make_pool(client, base_job_template=template)
    deployment = deploy(
        client,
        flow_dir,
        "show_env",
        parameters={"key": "MY_KEY"},
        job_variables={"env": {"MY_KEY": "from-deployment"}},
    )
    start_worker("pool")

    from_deployment = client.create_run(deployment["id"], {"parameters": {"key": "MY_KEY"}})
    from_pool = client.create_run(
        deployment["id"],
        # A run that adds one variable keeps the pool's and the deployment's others.
        {"parameters": {"key": "POOL_KEY"}, "job_variables": {"env": {"OTHER": "x"}}},
    )
    kept = client.create_run(
        deployment["id"],
        {"parameters": {"key": "MY_KEY"}, "job_variables": {"env": {"OTHER": "x"}}},
    )
    from_api_run = client.create_run(
        deployment["id"],
        {"parameters": {"key": "MY_KEY"}, "job_variables": {"env": {"MY_KEY": "from-api-run"}}},
    )
    from_cli = cli(
        "deployment",
        "run",
        deployment["full_name"],
        "--param",
        "key=MY_KEY",
        "--job-variable",
        'env={"MY_KEY": "from-run"}',
        "--json",
    )
    assert from_cli.exit_code == 0, from_cli.stderr
    cli_run = from_cli.json()
    assert cli_run["job_variables"] == {"env": {"MY_KEY": "from-run"}}

    expected = {
        from_deployment["id"]: "from-deployment",
        from_pool["id"]: "p",
        kept["id"]: "from-deployment",
        from_api_run["id"]: "from-api-run",
        cli_run["id"]: "from-run",
    }
    for done in wait_all(client, list(expected)):
        assert done["state"] == "COMPLETED", done["state_message"]
        assert done["result"] == expected[done["id"]], done["job_variables"]


# --- 4. invalid job variables ------------------------------------------------------------------


def test_invalid_job_variables_are_refused_before_anything_is_created(client, flow_dir) -> None:
    make_pool(client)
    with pytest.raises(InvalidInput) as refused:
        deploy(client, flow_dir, "greet", job_variables={"stream_output": "yes-please"})
    assert "stream_output" in refused.value.message
    assert "boolean" in refused.value.message
    assert client.list_deployments() == []

    deployment = deploy(client, flow_dir, "greet")
    with pytest.raises(InvalidInput) as refused_run:
        client.create_run(deployment["id"], {"job_variables": {"nope": 1}})
    assert "nope" in refused_run.value.message
    with pytest.raises(InvalidInput) as wrong_type:
        client.create_run(deployment["id"], {"job_variables": {"env": {"A": 1}}})
    assert "env" in wrong_type.value.message
    assert client.list_runs() == []


# --- 5. failing flow ---------------------------------------------------------------------------


def test_failing_flow_is_failed_with_message_and_traceback(
    client, cli, flow_dir, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "boom", **QUIET)
    start_worker("pool")

    watched = cli("deployment", "run", deployment["full_name"], "--watch")
    assert watched.exit_code != 0, "deployment run --watch of a failed run must exit non-zero"
    [run] = client.list_runs()
    assert run["state"] == "FAILED"
    assert run["state_message"] == "ValueError: kaboom"
    assert run["result"] is None
    assert f"{run['name']}: FAILED" in watched.stdout
    assert "ValueError: kaboom" in watched.stdout
    assert state_types(client, run["id"]) == ["SCHEDULED", "PENDING", "RUNNING", "FAILED"]
    logs = wait_for(
        lambda: (text := log_text(client, run["id"])) and "Traceback" in text and text,
        5,
        "the traceback in the logs",
    )
    assert "raise ValueError('kaboom')" in logs
    assert "ValueError: kaboom" in logs
    # The author's own frames, at ERROR, without the engine's around them.
    trace = [e for e in client.get_logs(run["id"]) if "Traceback" in e["message"]]
    assert [e["level"] for e in trace] == ["ERROR"]
    assert "flows.py" in trace[0]["message"]
    frames = [line for line in trace[0]["message"].splitlines() if line.strip().startswith("File")]
    assert frames and not [line for line in frames if "/push_pools/" in line], frames
    assert "push-pools frame(s) hidden" in trace[0]["message"]


# --- 6. crashing flow --------------------------------------------------------------------------


def test_crashing_process_is_crashed_with_exit_code_and_output(
    client, flow_dir, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "crash")
    start_worker("pool")
    run = client.create_run(deployment["id"], {})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "CRASHED"
    assert "exited with code 3" in done["state_message"]
    assert "about to die" in done["state_message"]
    states = client.run_states(run["id"])
    assert states[-1]["details"]["exit_code"] == 3


# --- 7. cancelling a running run ---------------------------------------------------------------


def test_cancel_running_run_stops_its_process(client, cli, flow_dir, worker_factory) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "sleepy")
    worker_factory("pool")  # the default heartbeat: the cancel request must wake it
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 30}})
    running = wait_for_state(client, run["id"], {"RUNNING"} | FINAL, timeout=20)
    assert running["state"] == "RUNNING"
    kind, _, pid_text = running["infrastructure_id"].partition(":")
    assert kind == "pid"
    pid = int(pid_text)
    assert not pid_gone(pid)

    started = time.monotonic()
    cancelled = cli("flow-run", "cancel", run["id"])
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "CANCELLING" in cancelled.stdout
    done = wait_for_state(client, run["id"], timeout=10)
    assert done["state"] == "CANCELLED"
    assert time.monotonic() - started < 8
    assert state_types(client, run["id"])[-2:] == ["CANCELLING", "CANCELLED"]
    wait_for(lambda: pid_gone(pid), 5, f"process {pid} to go away")


# --- 8. cancelling waiting and finished runs ---------------------------------------------------


def test_cancel_scheduled_run_at_once_and_finished_run_is_an_error(
    client, cli, flow_dir, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "greet")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = client.create_run(deployment["id"], {"scheduled_time": later})

    result = cli("flow-run", "cancel", scheduled["id"], "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["state"] == "CANCELLED"
    assert client.get_run(scheduled["id"])["state"] == "CANCELLED"
    assert state_types(client, scheduled["id"]) == ["SCHEDULED", "CANCELLED"]

    start_worker("pool")
    finished = wait_for_state(client, client.create_run(deployment["id"], {})["id"])
    assert finished["state"] == "COMPLETED"
    before = client.run_states(finished["id"])

    again = cli("flow-run", "cancel", finished["id"])
    assert again.exit_code != 0
    assert "already finished" in again.stderr
    after = client.get_run(finished["id"])
    assert after["state"] == "COMPLETED"
    assert after["result"] == finished["result"]
    assert client.run_states(finished["id"]) == before

    twice = cli("flow-run", "cancel", scheduled["id"])
    assert twice.exit_code != 0
    assert "already finished" in twice.stderr


# --- 9. two workers, one pool ------------------------------------------------------------------


def test_two_workers_never_take_the_same_run(client, flow_dir, start_worker) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "greet")
    run_ids = [
        client.create_run(deployment["id"], {"parameters": {"name": f"n{i}"}})["id"]
        for i in range(30)
    ]
    first = start_worker("pool", limit=4, name="worker-a")
    second = start_worker("pool", limit=4, name="worker-b")

    for done in wait_all(client, run_ids, timeout=55):
        assert done["state"] == "COMPLETED", done["state_message"]
        assert done["result"] == f"greeted {done['parameters']['name']}"
        types = state_types(client, done["id"])
        assert types.count("PENDING") == 1, types
        assert types.count("RUNNING") == 1, types
        assert done["worker_name"] in {first.name, second.name}


# --- 10. pool concurrency limit ----------------------------------------------------------------


def test_pool_concurrency_limit_is_respected(client, cli, flow_dir, start_worker) -> None:
    make_pool(client, concurrency_limit=1)
    deployment = deploy(client, flow_dir, "sleepy")
    run_ids = [
        client.create_run(deployment["id"], {"parameters": {"seconds": 0.5}})["id"]
        for _ in range(3)
    ]
    # Two workers with room for four each: the pool's limit holds across workers.
    start_worker("pool", limit=4)
    start_worker("pool", limit=4)

    most_running = 0
    deadline = time.monotonic() + 40
    while True:
        listed = cli("flow-run", "ls", "--json")
        assert listed.exit_code == 0, listed.stderr
        states = [r["state"] for r in listed.json()]
        running = states.count("RUNNING")
        assert running <= 1, states
        assert sum(s in {"PENDING", "RUNNING", "CANCELLING"} for s in states) <= 1, states
        most_running = max(most_running, running)
        if all(s in FINAL for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    assert most_running == 1

    runs = [client.get_run(run_id) for run_id in run_ids]
    assert all(r["state"] == "COMPLETED" for r in runs)
    # From the recorded times too: each run started after the previous one ended.
    spans = sorted((ts(r["start_time"]), ts(r["end_time"])) for r in runs)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans


# --- 11. queues: priority and pause ------------------------------------------------------------


def test_higher_priority_queue_runs_first(client, flow_dir, start_worker) -> None:
    make_pool(client, paused=True)
    client.create_work_queue("pool", {"name": "low", "priority": 10})
    client.create_work_queue("pool", {"name": "high", "priority": 2})
    low = deploy(client, flow_dir, "greet", name="low", work_queue_name="low")
    high = deploy(client, flow_dir, "greet", name="high", work_queue_name="high")
    low_ids = [client.create_run(low["id"], {})["id"] for _ in range(2)]
    high_ids = [client.create_run(high["id"], {})["id"] for _ in range(2)]

    start_worker("pool", limit=1)
    # Its first poll has seen the paused pool and claimed nothing.
    wait_for(lambda: client.get_work_pool("pool")["last_polled"], 10, "the worker's first poll")
    assert all(client.get_run(i)["state"] == "SCHEDULED" for i in low_ids + high_ids)
    client.update_work_pool("pool", {"paused": False})

    runs = {r["id"]: r for r in wait_all(client, low_ids + high_ids)}
    assert all(r["state"] == "COMPLETED" for r in runs.values())
    assert {runs[i]["work_queue_name"] for i in high_ids} == {"high"}
    last_high_start = max(ts(runs[i]["start_time"]) for i in high_ids)
    first_low_start = min(ts(runs[i]["start_time"]) for i in low_ids)
    assert last_high_start < first_low_start


def test_paused_queue_runs_stay_scheduled(client, cli, flow_dir, start_worker) -> None:
    make_pool(client)
    client.create_work_queue("pool", {"name": "held"})
    client.update_work_queue("pool", "held", {"paused": True})
    held_deployment = deploy(client, flow_dir, "greet", name="held", work_queue_name="held")
    open_deployment = deploy(client, flow_dir, "greet", name="open")
    held = client.create_run(held_deployment["id"], {})
    open_ids = [client.create_run(open_deployment["id"], {})["id"] for _ in range(2)]

    start_worker("pool")
    assert all(r["state"] == "COMPLETED" for r in wait_all(client, open_ids))
    assert client.get_run(held["id"])["state"] == "SCHEDULED"
    assert state_types(client, held["id"]) == ["SCHEDULED"]

    assert cli("work-queue", "resume", "held", "--pool", "pool").exit_code == 0
    assert wait_for_state(client, held["id"])["state"] == "COMPLETED"


# --- 12. flow-run ls / inspect / delete --------------------------------------------------------


def test_flow_run_ls_inspect_delete(client, cli, flow_dir, start_worker) -> None:
    make_pool(client)
    test = deploy(client, flow_dir, "greet")
    other = deploy(client, flow_dir, "greet", name="other")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    waiting = client.create_run(test["id"], {"scheduled_time": later})
    done_ids = [client.create_run(test["id"], {})["id"] for _ in range(6)]
    other_id = client.create_run(other["id"], {})["id"]
    start_worker("pool")
    assert all(r["state"] == "COMPLETED" for r in wait_all(client, [*done_ids, other_id]))

    limited = cli(
        "flow-run", "ls", "--state", "COMPLETED", "--deployment", "greet/test",
        "--limit", "5", "--json",
    )  # fmt: skip
    assert limited.exit_code == 0, limited.stderr
    rows = limited.json()
    assert len(rows) == 5
    assert {r["id"] for r in rows} <= set(done_ids)
    assert {(r["state"], r["deployment_name"]) for r in rows} == {("COMPLETED", "test")}

    everything = cli("flow-run", "ls", "--state", "completed", "--deployment", "greet/test",
                     "--json").json()  # fmt: skip
    assert sorted(r["id"] for r in everything) == sorted(done_ids)
    scheduled = cli("flow-run", "ls", "--state", "SCHEDULED", "--json").json()
    assert [r["id"] for r in scheduled] == [waiting["id"]]
    of_other = cli("flow-run", "ls", "--deployment", "greet/other", "--json").json()
    assert [r["id"] for r in of_other] == [other_id]

    inspected = cli("flow-run", "inspect", done_ids[0], "--json")
    assert inspected.exit_code == 0, inspected.stderr
    body = inspected.json()
    assert body["id"] == done_ids[0]
    assert [s["type"] for s in body["states"]] == [
        "SCHEDULED", "PENDING", "RUNNING", "COMPLETED",
    ]  # fmt: skip

    deleted = cli("flow-run", "delete", done_ids[0])
    assert deleted.exit_code == 0, deleted.stderr
    gone = cli("flow-run", "inspect", done_ids[0])
    assert gone.exit_code != 0
    assert "not found" in gone.stderr
    assert cli("flow-run", "logs", done_ids[0]).exit_code != 0
    remaining = cli("flow-run", "ls", "--deployment", "greet/test", "--json").json()
    assert done_ids[0] not in {r["id"] for r in remaining}
    assert len(remaining) == 6

    bogus = cli("flow-run", "ls", "--state", "BOGUS")
    assert bogus.exit_code != 0
    assert "unknown state 'BOGUS'" in bogus.stderr
    assert "COMPLETED" in bogus.stderr  # lists the valid ones
    assert "Traceback" not in bogus.stderr


# --- 13. logs --follow -------------------------------------------------------------------------


def test_logs_follow_returns_when_the_run_ends(client, cli, flow_dir, start_worker) -> None:
    add_flows(flow_dir, CHATTY)
    make_pool(client)
    deployment = deploy(client, flow_dir, "chatty", **QUIET)
    start_worker("pool")
    run = client.create_run(deployment["id"], {})
    running = wait_for_state(client, run["id"], {"RUNNING"} | FINAL, timeout=20)
    assert running["state"] == "RUNNING"

    followed = cli("flow-run", "logs", run["id"], "--follow")
    assert followed.exit_code == 0, followed.stderr
    assert client.get_run(run["id"])["state"] == "COMPLETED"
    printed = followed.stdout.splitlines()
    for line in ("tick 0 for you", "tick 3 for you", "last words"):
        assert sum(p.endswith(f"INFO    {line}") for p in printed) == 1, printed
    assert printed[0].endswith("running flow 'chatty' (run " + run["name"] + ")")

    # Without --follow the same command prints what is there now and returns at once.
    again = cli("flow-run", "logs", run["id"])
    assert again.exit_code == 0
    assert again.stdout.splitlines()[: len(printed)] == printed


def test_watch_prints_every_log_line_of_a_run(client, cli, flow_dir, start_worker) -> None:
    # A flow that ends with a burst of output, shipped 200 lines per request: the run may only
    # look finished once all of it is stored, and the watcher must print all of it, even the
    # thousands of lines still unread when it sees the final state.
    add_flows(
        flow_dir,
        "@flow(log_prints=True)\n"
        "def burst() -> None:\n"
        "    for i in range(5000):\n"
        "        print(f'line {i}')\n"
        "    print('last words')\n",
    )
    make_pool(client)
    deployment = deploy(client, flow_dir, "burst", **QUIET)
    start_worker("pool")

    watched = cli("deployment", "run", deployment["full_name"], "--watch")
    assert watched.exit_code == 0, watched.stderr
    [run] = client.list_runs()
    assert run["state"] == "COMPLETED"
    assert "INFO    line 0" in watched.stdout
    # The server has every line (running flow, 5000 lines, last words, flow completed).
    wait_for(
        lambda: client.get_logs(run["id"], limit=10_000)[-1]["message"].endswith("flow completed"),
        10,
        "all the run's lines to be stored",
    )
    assert len(client.get_logs(run["id"], limit=10_000)) == 5003
    assert "INFO    last words" in watched.stdout, "--watch returned before the last line"


# --- 14. the worker as its own process ---------------------------------------------------------


def test_worker_process_runs_flows_and_stops_on_sigterm(
    client, cli, server, home, flow_dir, tmp_path
) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "greet")
    env = {**os.environ, "PUSH_POOLS_API_URL": server.api_url, "PUSH_POOLS_HOME": str(home)}
    output = tmp_path / "worker.out"
    with output.open("w") as sink:
        worker = subprocess.Popen(
            [str(PUSH_POOLS), "worker", "start", "--pool", "pool", "--name", "solo"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        run = client.create_run(deployment["id"], {"parameters": {"name": "Bob"}})
        done = wait_for_state(client, run["id"], timeout=30)
        assert done["state"] == "COMPLETED", done["state_message"]
        assert done["worker_name"] == "solo"
        assert "hello Bob" in output.read_text()  # the flow's output is streamed

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
    text = output.read_text()
    assert "Worker stopped" in text
    assert "Traceback" not in text

    missing = cli("worker", "start", "--pool", "missing")
    assert missing.exit_code != 0
    assert "not found" in missing.stderr


# --- 15. retries and timeouts ------------------------------------------------------------------


def test_flow_retries_and_timeout(client, tmp_path, start_worker) -> None:
    project = tmp_path / "policy"
    project.mkdir()
    marker = tmp_path / "first-attempt-done"
    (project / "flows.py").write_text(
        "import time\n"
        "from pathlib import Path\n"
        "from push_pools import flow\n\n"
        "@flow(retries=1)\n"
        "def flaky(marker: str) -> str:\n"
        "    path = Path(marker)\n"
        "    if not path.exists():\n"
        "        path.write_text('1')\n"
        "        raise RuntimeError('first attempt fails')\n"
        "    return 'second time lucky'\n\n"
        "@flow(timeout_seconds=0.5)\n"
        "def slow() -> None:\n"
        "    time.sleep(5)\n"
    )
    make_pool(client)
    flaky = deploy(client, project, "flaky", parameters={"marker": str(marker)})
    slow = deploy(client, project, "slow")
    start_worker("pool")
    flaky_run = client.create_run(flaky["id"], {})
    slow_run = client.create_run(slow["id"], {})

    done = wait_for_state(client, flaky_run["id"])
    assert done["state"] == "COMPLETED", done["state_message"]
    assert done["run_count"] == 2
    assert done["result"] == "second time lucky"
    assert marker.exists()
    states = client.run_states(flaky_run["id"])
    assert [s["type"] for s in states].count("RUNNING") == 2
    assert "first attempt fails" in (states[-2]["message"] or "")

    timed_out = wait_for_state(client, slow_run["id"])
    assert timed_out["state"] == "FAILED"
    assert "timeout" in timed_out["state_message"].lower()
    took = ts(timed_out["end_time"]) - ts(timed_out["start_time"])
    assert took < timedelta(seconds=4)  # stopped at the timeout, not after the 5 s sleep
