"""The managed executor on its own: sandboxes, limits, adoption, cancel, env cache, template.

No server and no dispatcher: each test submits a tiny script as the job's `command` and watches
the sandbox through the executor's verbs, as the dispatcher would.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from push_pools import pool_types
from push_pools.errors import InvalidInput
from push_pools.executors import load_executor
from push_pools.executors.base import InfrastructureState, InfrastructureStatus, Submission
from push_pools.executors.managed.executor import ManagedExecutor
from push_pools.executors.managed.template import default_template
from push_pools.managed import is_alive, read_pid_file
from push_pools.managed.environments import environment_key, normalize_packages
from push_pools.templates import (
    render_job_configuration,
    validate_base_job_template,
    validate_job_variables,
)

EXITED = InfrastructureState.EXITED
RUNNING = InfrastructureState.RUNNING


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[ManagedExecutor]:
    managed = ManagedExecutor(tmp_path / "managed")
    yield managed
    # cleanup() also kills whatever a failed test left running.
    for run_dir in managed.runs_dir.glob("pp-*"):
        managed.cleanup(run_dir.name)


def python(code: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def submission(name: str, command: str | None = None, **config: Any) -> Submission:
    if command is not None:
        config["command"] = command
    return Submission(
        flow_run_id=name.split("-")[1],
        flow_run_name="n",
        job_configuration=config,
        engine_env={},
        infrastructure_name=name,
    )


def wait_for(
    executor: ManagedExecutor, name: str, state: InfrastructureState, timeout: float = 20.0
) -> InfrastructureStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = executor.status([name])[name]
        if status.state == state or time.monotonic() > deadline:
            assert status.state == state, (status, executor.logs(name))
            return status
        time.sleep(0.05)


def engine_pid(executor: ManagedExecutor, name: str) -> tuple[int, int | None]:
    ref = read_pid_file(executor.runs_dir / name / "pid")
    assert ref is not None
    return ref


# --------------------------------------------------------------------------- running


def test_runs_the_command_in_a_sandbox_with_the_job_env(
    executor: ManagedExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_POOLS_ENCRYPTION_KEY", "server-secret")
    script = (
        "import json, os, pathlib, time\n"
        "keys = ['X', 'HOME', 'TMPDIR', 'PUSH_POOLS_API_KEY', 'PUSH_POOLS_ENCRYPTION_KEY',"
        " 'PUSH_POOLS_INFRASTRUCTURE_ID']\n"
        "seen = {k: os.environ.get(k) for k in keys}\n"
        "seen['cwd'] = os.getcwd()\n"
        "pathlib.Path('seen.json').write_text(json.dumps(seen))\n"
        "while not pathlib.Path('release').exists(): time.sleep(0.02)\n"
    )
    sub = Submission(
        flow_run_id="r1",
        flow_run_name="n",
        job_configuration={
            "command": python(script),
            "env": {"X": "from-job", "PUSH_POOLS_API_KEY": "job-value"},
        },
        engine_env={"PUSH_POOLS_API_KEY": "engine-key"},
        infrastructure_name="pp-r1-1",
    )

    assert executor.submit(sub) == "pp-r1-1"
    wait_for(executor, "pp-r1-1", RUNNING)
    run_dir = executor.runs_dir / "pp-r1-1"
    # The request holds the API key: only the server's user may read it.
    assert stat.S_IMODE((run_dir / "request.json").stat().st_mode) == 0o600
    (run_dir / "work" / "release").touch()
    status = wait_for(executor, "pp-r1-1", EXITED)

    assert (status.exit_code, status.reason) == (0, "exited")
    # Read by the sandbox, then stripped of its secrets for a sandbox kept for debugging.
    assert "engine-key" not in (run_dir / "request.json").read_text()
    seen = json.loads((run_dir / "work" / "seen.json").read_text())
    assert seen == {
        "X": "from-job",
        "HOME": str(run_dir / "work"),
        "TMPDIR": str(run_dir / "tmp"),
        "PUSH_POOLS_API_KEY": "engine-key",  # the engine's variables win over the job's
        "PUSH_POOLS_ENCRYPTION_KEY": None,  # nothing of the server's environment leaks
        "PUSH_POOLS_INFRASTRUCTURE_ID": "pp-r1-1",
        "cwd": str(run_dir / "work"),
    }


def test_default_command_is_the_engine(executor: ManagedExecutor) -> None:
    sub = Submission(
        flow_run_id="r9",
        flow_run_name="n",
        job_configuration={"env": {}},
        engine_env={"PUSH_POOLS_FLOW_RUN_ID": "r9", "PUSH_POOLS_API_URL": "http://127.0.0.1:9/a"},
        infrastructure_name="pp-r9-1",
    )
    executor.submit(sub)
    wait_for(executor, "pp-r9-1", RUNNING)
    pid, _ = engine_pid(executor, "pp-r9-1")
    # The command comes last, after bubblewrap's and setpriv's options when isolated.
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert cmdline[-3:] == [sys.executable.encode(), b"-m", b"push_pools.engine"]
    executor.cancel("pp-r9-1", grace_seconds=5, wait=True)
    assert executor.status(["pp-r9-1"])["pp-r9-1"].reason == "cancelled"


def test_the_run_outlives_the_server_that_started_it(
    executor: ManagedExecutor, tmp_path: Path
) -> None:
    server = (
        "import sys\n"
        "from pathlib import Path\n"
        "from push_pools.executors.base import Submission\n"
        "from push_pools.executors.managed.executor import ManagedExecutor\n"
        "command = sys.argv[2]\n"
        "sub = Submission('r15', 'n', {'command': command}, {}, infrastructure_name='pp-r15-1')\n"
        "ManagedExecutor(Path(sys.argv[1])).submit(sub)\n"
        "import os; os._exit(0)  # like a killed server: no cleanup of any kind\n"
    )
    script = "import time; time.sleep(1); open('done', 'w').close()"
    subprocess.run(
        [sys.executable, "-c", server, str(executor.root), python(script)], check=True, timeout=30
    )

    assert executor.status(["pp-r15-1"])["pp-r15-1"].state in (
        InfrastructureState.STARTING,
        RUNNING,
    )
    assert wait_for(executor, "pp-r15-1", EXITED).exit_code == 0
    assert (executor.runs_dir / "pp-r15-1" / "work" / "done").exists()


def test_submitting_twice_adopts_the_first_sandbox(executor: ManagedExecutor) -> None:
    script = "open('starts.txt', 'a').write('started\\n'); import time; time.sleep(0.3)"
    sub = submission("pp-r2-1", python(script))
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(executor.submit(sub))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(executor, "pp-r2-1", EXITED)
    # A retry after the run ended (a server that crashed after starting it) adopts too.
    assert ManagedExecutor(executor.root).submit(sub) == "pp-r2-1"
    time.sleep(0.3)

    assert ids == ["pp-r2-1"] * 4
    assert (executor.runs_dir / "pp-r2-1" / "work" / "starts.txt").read_text() == "started\n"


def test_a_submit_killed_before_its_sandbox_started_is_started_by_the_next_submit(
    executor: ManagedExecutor,
) -> None:
    # A server SIGKILLed inside submit(), after it marked the run submitted and before the
    # sandbox existed: the restarted server's submit must start the run, not adopt nothing
    # (which the watcher later reported as a lost sandbox and Crashed).
    server = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from push_pools.executors.base import Submission\n"
        "from push_pools.executors.managed.executor import ManagedExecutor\n"
        "class Killed(ManagedExecutor):\n"
        "    def _start(self, *args, **kwargs):\n"
        "        os._exit(0)  # the kill -9 lands here: no cleanup of any kind\n"
        "sub = Submission('r16', 'n', {'command': sys.argv[2]}, {},\n"
        "                 infrastructure_name='pp-r16-1')\n"
        "Killed(Path(sys.argv[1])).submit(sub)\n"
    )
    script = "open('starts.txt', 'a').write('started\\n')"
    subprocess.run(
        [sys.executable, "-c", server, str(executor.root), python(script)], check=True, timeout=30
    )
    assert (executor.runs_dir / "pp-r16-1").is_dir()

    again = ManagedExecutor(executor.root)  # the restarted server
    assert again.submit(submission("pp-r16-1", python(script))) == "pp-r16-1"
    assert wait_for(again, "pp-r16-1", EXITED).exit_code == 0
    # And a submit after that (another retry) adopts the finished run instead of a rerun.
    assert again.submit(submission("pp-r16-1", python(script))) == "pp-r16-1"
    assert (again.runs_dir / "pp-r16-1" / "work" / "starts.txt").read_text() == "started\n"


def test_a_submit_while_the_sandbox_lives_adopts_it(executor: ManagedExecutor) -> None:
    script = "open('starts.txt', 'a').write('started\\n'); import time; time.sleep(2)"
    executor.submit(submission("pp-r17-1", python(script)))
    wait_for(executor, "pp-r17-1", RUNNING)
    # A restarted server (no memory of the first submit) retries it while the run is running.
    assert ManagedExecutor(executor.root).submit(submission("pp-r17-1", python(script)))
    assert wait_for(executor, "pp-r17-1", EXITED).exit_code == 0
    assert (executor.runs_dir / "pp-r17-1" / "work" / "starts.txt").read_text() == "started\n"


def test_failing_script_reports_exit_code_and_last_lines(executor: ManagedExecutor) -> None:
    script = "import sys; print('line-1'); print('boom', file=sys.stderr); sys.exit(3)"
    executor.submit(submission("pp-r3-1", python(script)))

    status = wait_for(executor, "pp-r3-1", EXITED)

    assert (status.exit_code, status.reason) == (3, "exited")
    assert status.message == "exited with code 3"
    assert "line-1" in status.last_lines and "boom" in status.last_lines
    assert "boom" in executor.logs("pp-r3-1")
    assert executor.logs("pp-r3-1", limit=1) == status.last_lines[-1:]
    assert executor.result("pp-r3-1") == {
        "exit_code": 3,
        "reason": "exited",
        "message": "exited with code 3",
    }


def test_timeout_stops_the_run(executor: ManagedExecutor) -> None:
    started = time.monotonic()
    executor.submit(submission("pp-r4-1", python("import time; time.sleep(60)"), timeout_seconds=1))

    status = wait_for(executor, "pp-r4-1", EXITED, timeout=10)

    assert time.monotonic() - started < 6
    assert status.reason == "timeout"
    assert status.message == "exceeded its timeout of 1 s"
    assert status.exit_code == -signal.SIGTERM
    assert not is_alive(engine_pid(executor, "pp-r4-1"))


def test_memory_limit_is_enforced_and_reported(executor: ManagedExecutor) -> None:
    hog = python("b = bytearray(500 * 1024 * 1024)")
    modest = python("b = bytearray(10 * 1024 * 1024)")
    executor.submit(submission("pp-r5-1", hog, memory=100))
    executor.submit(submission("pp-r5-2", modest, memory=100))

    hogged = wait_for(executor, "pp-r5-1", EXITED)
    fine = wait_for(executor, "pp-r5-2", EXITED)

    assert hogged.reason == "memory"
    assert hogged.message == "the run used more than its memory limit of 100 MiB"
    assert hogged.exit_code not in (0, None)
    assert any("MemoryError" in line for line in hogged.last_lines)
    assert (fine.exit_code, fine.reason) == (0, "exited")


def test_cpu_pins_the_run_to_cores(executor: ManagedExecutor) -> None:
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs CPU affinity and at least two cores")
    script = "import os; open('cores', 'w').write(str(len(os.sched_getaffinity(0))))"
    executor.submit(submission("pp-r6-1", python(script), cpu=0.5))

    assert wait_for(executor, "pp-r6-1", EXITED).exit_code == 0
    assert (executor.runs_dir / "pp-r6-1" / "work" / "cores").read_text() == "1"


# --------------------------------------------------------------------------- cancel and cleanup


def test_cancel_stops_the_run_and_its_children(executor: ManagedExecutor) -> None:
    # The child holds a lock for as long as it lives (its pid means nothing outside the run's
    # PID namespace): the lock coming free shows it was stopped.
    script = (
        "import fcntl, subprocess, time\n"
        "lock = open('child.lock', 'w')\n"
        "fcntl.flock(lock, fcntl.LOCK_EX)\n"
        "subprocess.Popen(['sleep', '60'], pass_fds=[lock.fileno()])\n"
        "open('started', 'w').close()\n"
        "time.sleep(60)\n"
    )
    executor.submit(submission("pp-r7-1", python(script)))
    wait_for(executor, "pp-r7-1", RUNNING)
    work = executor.runs_dir / "pp-r7-1" / "work"
    deadline = time.monotonic() + 10
    while not (work / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _lock_is_free(work / "child.lock")
    engine = engine_pid(executor, "pp-r7-1")

    # A new executor, as after a server restart: everything it needs is on disk.
    ManagedExecutor(executor.root).cancel("pp-r7-1", grace_seconds=5)
    status = wait_for(executor, "pp-r7-1", EXITED, timeout=10)

    assert status.reason == "cancelled"
    assert not is_alive(engine)
    deadline = time.monotonic() + 10
    while not _lock_is_free(work / "child.lock"):
        assert time.monotonic() < deadline, "the run's child still runs"
        time.sleep(0.05)


def _lock_is_free(path: Path) -> bool:
    with path.open() as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_cancel_while_waiting_for_an_environment(executor: ManagedExecutor) -> None:
    packages = ["push-pools-never-built==1.0"]
    key = environment_key(normalize_packages(packages), os.environ)
    executor.envs_dir.mkdir(parents=True)
    # Hold the env's build lock, as a concurrent build would: the sandbox waits in STARTING.
    with open(executor.envs_dir / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        executor.submit(submission("pp-r16-1", python("print('never')"), pip_packages=packages))
        wait_for(executor, "pp-r16-1", InfrastructureState.STARTING)
        time.sleep(0.3)
        assert executor.status(["pp-r16-1"])["pp-r16-1"].state == InfrastructureState.STARTING

        executor.cancel("pp-r16-1", grace_seconds=5, wait=True)

    status = executor.status(["pp-r16-1"])["pp-r16-1"]
    assert (status.state, status.reason) == (EXITED, "cancelled")
    assert not (executor.runs_dir / "pp-r16-1" / "pid").exists()
    assert not (executor.envs_dir / key).exists()


def test_cancel_kills_after_the_grace_period(executor: ManagedExecutor) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open('ready', 'w').close()\n"
        "time.sleep(60)\n"
    )
    executor.submit(submission("pp-r8-1", python(script)))
    ready = executor.runs_dir / "pp-r8-1" / "work" / "ready"
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    started = time.monotonic()
    executor.cancel("pp-r8-1", grace_seconds=0.5, wait=True)

    assert time.monotonic() - started < 5
    status = executor.status(["pp-r8-1"])["pp-r8-1"]
    assert (status.state, status.reason, status.exit_code) == (EXITED, "cancelled", -9)


def test_a_dead_sandbox_is_lost_and_its_engine_still_cancellable(
    executor: ManagedExecutor,
) -> None:
    executor.submit(submission("pp-r10-1", python("import time; time.sleep(60)")))
    wait_for(executor, "pp-r10-1", RUNNING)
    sandbox = read_pid_file(executor.runs_dir / "pp-r10-1" / "sandbox.pid")
    assert sandbox is not None
    os.kill(sandbox[0], signal.SIGKILL)
    engine = engine_pid(executor, "pp-r10-1")
    deadline = time.monotonic() + 5
    while is_alive(sandbox) and time.monotonic() < deadline:
        executor.status(["pp-r10-1"])  # reaps the sandbox, which is the executor's child
        time.sleep(0.02)

    # The engine lives on without its sandbox: the run is still running.
    assert executor.status(["pp-r10-1"])["pp-r10-1"].state == RUNNING
    executor.cancel("pp-r10-1", grace_seconds=5)

    status = executor.status(["pp-r10-1"])["pp-r10-1"]
    assert (status.state, status.reason) == (EXITED, "cancelled")
    assert not is_alive(engine)


def test_sandbox_killed_with_its_engine_is_lost(executor: ManagedExecutor) -> None:
    executor.submit(submission("pp-r11-1", python("import time; time.sleep(60)")))
    wait_for(executor, "pp-r11-1", RUNNING)
    sandbox = read_pid_file(executor.runs_dir / "pp-r11-1" / "sandbox.pid")
    assert sandbox is not None
    engine = engine_pid(executor, "pp-r11-1")
    os.kill(sandbox[0], signal.SIGKILL)
    os.killpg(engine[0], signal.SIGKILL)

    status = wait_for(executor, "pp-r11-1", EXITED, timeout=5)

    assert (status.exit_code, status.reason) == (None, "lost")
    assert status.message and "gone" in status.message


def test_cleanup_removes_the_run_directory(executor: ManagedExecutor) -> None:
    executor.submit(submission("pp-r12-1", python("print('hi')")))
    wait_for(executor, "pp-r12-1", EXITED)
    assert (executor.runs_dir / "pp-r12-1").is_dir()

    executor.cleanup("pp-r12-1")

    assert not (executor.runs_dir / "pp-r12-1").exists()
    assert executor.status(["pp-r12-1"])["pp-r12-1"].state == InfrastructureState.MISSING
    assert executor.logs("pp-r12-1") == []
    executor.cleanup("pp-r12-1")  # twice is fine


def test_unknown_and_malformed_ids(executor: ManagedExecutor, tmp_path: Path) -> None:
    statuses = executor.status(["pp-nope-1", "../../etc", ""])
    assert {s.state for s in statuses.values()} == {InfrastructureState.MISSING}
    executor.cancel("pp-nope-1")
    executor.cleanup("../managed")  # never a path outside the runs directory
    assert (tmp_path / "managed").is_dir()
    with pytest.raises(InvalidInput):
        executor.submit(
            Submission(
                flow_run_id="x",
                flow_run_name="n",
                job_configuration={},
                engine_env={},
                infrastructure_name="../evil",
            )
        )


# --------------------------------------------------------------------------- pip packages


def test_failed_install_fails_the_run_and_does_not_poison_the_cache(
    executor: ManagedExecutor,
) -> None:
    bad = "push-pools-no-such-package-xyz==1.0"
    executor.submit(submission("pp-r13-1", python("print('never')"), pip_packages=[bad]))

    status = wait_for(executor, "pp-r13-1", EXITED, timeout=60)

    assert status.reason == "install_failed"
    assert status.exit_code not in (0, None)
    assert status.message and "push-pools-no-such-package-xyz" in status.message
    assert any("push-pools-no-such-package-xyz" in line for line in executor.logs("pp-r13-1"))
    assert "never" not in executor.logs("pp-r13-1", limit=500)
    # Nothing published, nothing half-built left behind.
    assert [p.name for p in executor.envs_dir.iterdir() if not p.name.endswith(".lock")] == []

    executor.submit(submission("pp-r13-2", python("print('works')"), pip_packages=[]))
    status = wait_for(executor, "pp-r13-2", EXITED)
    assert (status.exit_code, "works" in status.last_lines) == (0, True)


def test_packages_are_installed_once_and_take_precedence(executor: ManagedExecutor) -> None:
    # `python` is the env's interpreter; push_pools must still be importable from it.
    script = (
        "import sys, six, push_pools.engine\n"
        "open('seen', 'w').write(six.__version__ + ' ' + six.__file__ + ' ' + sys.prefix)\n"
    )
    command = f"python -c {shlex.quote(script)}"
    # Two runs at once wanting the same set (spelled differently): one installs, one waits.
    executor.submit(submission("pp-r14-1", command, pip_packages=["six==1.16.0"]))
    executor.submit(submission("pp-r14-2", command, pip_packages=[" Six == 1.16.0 "]))
    for name in ("pp-r14-1", "pp-r14-2"):
        status = wait_for(executor, name, EXITED, timeout=90)
        assert status.exit_code == 0, executor.logs(name)
    # A later run starts with no installer at all.
    executor.submit(submission("pp-r14-3", command, pip_packages=["six==1.16.0"]))
    assert wait_for(executor, "pp-r14-3", EXITED).exit_code == 0

    names = ("pp-r14-1", "pp-r14-2", "pp-r14-3")
    logs = {name: "\n".join(executor.logs(name, limit=500)) for name in names}
    installed = [name for name in names if "installing 1 package(s)" in logs[name]]
    assert installed in (["pp-r14-1"], ["pp-r14-2"])
    assert "installing" not in logs["pp-r14-3"]
    assert "using cached environment" in logs["pp-r14-3"]
    seen = [(executor.runs_dir / name / "work" / "seen").read_text().split() for name in names]
    envs = executor.envs_dir.resolve()
    for version, module, prefix in seen:
        assert version == "1.16.0"
        assert Path(module).is_relative_to(envs)
        assert Path(prefix).parent == envs
    assert seen[0] == seen[1] == seen[2]


def test_package_lists_are_normalized() -> None:
    assert normalize_packages(["Six == 1.16.0", "six==1.16.0", " ", "Foo_Bar.baz>=1,<2"]) == [
        "foo-bar-baz>=1,<2",
        "six==1.16.0",
    ]
    assert normalize_packages(["requests; python_version >= '3.8'"]) == [
        "requests; python_version >= '3.8'"
    ]


# --------------------------------------------------------------------------- template


def test_default_template_validates_and_renders() -> None:
    template = default_template()
    assert validate_base_job_template(template) is template
    for name, schema in template["variables"]["properties"].items():
        assert schema.get("title"), name
        assert len(schema.get("description", "")) > 20, name
    assert "advisory" in template["variables"]["properties"]["cpu"]["description"].lower()

    rendered = render_job_configuration(template, {"memory": 512, "env": {"A": "1"}})

    assert rendered == {
        "command": None,
        "env": {"A": "1"},
        "pip_packages": [],
        "cpu": None,
        "memory": 512,
        "timeout_seconds": None,
        "start_timeout_seconds": 600,
        "keep_infrastructure": False,
    }
    assert default_template() == default_template()
    assert default_template() is not default_template()


@pytest.mark.parametrize(
    "variables",
    [
        {"cpu": -1},
        {"cpu": 0},
        {"memory": 10**9},
        {"memory": 8},
        {"timeout_seconds": 0},
        {"start_timeout_seconds": 86401},
        {"pip_packages": ["--index-url=https://evil.example"]},
        {"pip_packages": "six"},
    ],
)
def test_default_template_rejects_bad_variables(variables: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_job_variables(default_template(), variables)
    assert next(iter(variables)) in raised.value.message


def test_default_template_accepts_good_variables() -> None:
    validate_job_variables(
        default_template(),
        {
            "cpu": 0.5,
            "memory": 512,
            "timeout_seconds": 3600,
            "pip_packages": ["six==1.16.0"],
            "keep_infrastructure": True,
        },
    )


def test_managed_pool_type_is_registered() -> None:
    managed = pool_types.get("managed")
    assert managed.is_push is True
    assert managed.executor == "push_pools.executors.managed.executor:ManagedExecutor"
    assert managed.default_template() == default_template()
    assert isinstance(load_executor("managed"), ManagedExecutor)
