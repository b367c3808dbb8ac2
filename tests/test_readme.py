"""The README's tour, run as written: every command of its marked shell blocks, in order,
against a fresh home and a free port. A README that no longer works fails here.

The only substitutions are the ones the README itself names: `<run>` becomes the id that
`deployment run` printed, and the server listens where PUSH_POOLS_API_URL says (which
`server start` honours). `server start` and `worker start` ("in another terminal") run in
the background until the end.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.dispatch_helpers import listens
from tests.test_cli_basics import EXAMPLES, PUSH_POOLS, base_env, free_port

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- tests/test_readme.py runs this block"
BACKGROUND = ("server start", "worker start")


def marked_blocks(text: str, against: str = "") -> list[list[str]]:
    """The shell lines of each fenced block that follows a test marker: those the tour runs,
    or with `against`, those marked to run against that emulator ("moto")."""
    blocks = []
    for match in re.finditer(re.escape(MARKER) + r"(.*?)-->\n```bash\n(.*?)```", text, re.S):
        emulator = re.search(r"against (\w+)", match.group(1))
        if (emulator.group(1) if emulator else "") != against:
            continue
        lines = []
        for raw in match.group(2).splitlines():
            command = re.split(r"\s{2,}#", raw, maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
        blocks.append(lines)
    return blocks


def test_the_readme_marks_the_tour_and_the_managed_pool() -> None:
    blocks = marked_blocks(README.read_text())
    assert len(blocks) == 2
    assert blocks[0][0] == "push-pools server start"
    assert any("my-managed-pool" in line for line in blocks[1])


@pytest.mark.timeout(300)
def test_the_readme_tour_runs_as_written(tmp_path: Path, readable_dir: Path) -> None:
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = base_env(tmp_path / "home", api_url)
    # The checkout as the reader has it; managed runs read the flow as an unprivileged user.
    checkout = readable_dir / "push-pools"
    (checkout / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLES / "hello_flow.py", checkout / "examples" / "hello_flow.py")
    cwd = checkout
    background: list[subprocess.Popen[bytes]] = []
    last_run_id = ""
    try:
        for line in [line for block in marked_blocks(README.read_text()) for line in block]:
            words = shlex.split(line.replace("<run>", last_run_id))
            if words[0] == "cd":
                cwd = (cwd / words[1]).resolve()
                continue
            assert words[0] == "push-pools", f"the README's tour runs only push-pools: {line}"
            args = [str(PUSH_POOLS), *words[1:]]
            if any(kind in line for kind in BACKGROUND):
                log = (tmp_path / f"{len(background)}.log").open("w")
                background.append(
                    subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
                )
                if "server start" in line:
                    wait_healthy(api_url, background[-1])
                continue
            result = subprocess.run(
                args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"`{line}` failed:\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stdout + result.stderr
            if words[1:3] == ["deployment", "run"]:
                assert "COMPLETED" in result.stdout, result.stdout
                last_run_id = result.stdout.splitlines()[1].strip()
            if words[1:3] == ["flow-run", "logs"]:
                assert "hello" in result.stdout, result.stdout
    finally:
        for process in background:
            process.terminate()
        for process in background:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert last_run_id, "the tour ran no deployment"


def wait_healthy(api_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "the README's `server start` exited"
        try:
            answered = httpx.get(f"{api_url}/health", timeout=2).status_code == 200
            if answered and listens(server.pid, int(api_url.split(":")[2].split("/")[0])):
                return  # our server, not another test's that took the same free port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the README's server did not answer within 60 s")


def test_the_readme_marks_the_ecs_section_for_moto() -> None:
    text = README.read_text()
    [block] = marked_blocks(text, against="moto")
    assert any("--type ecs:push --provision-infra" in line for line in block)
    # The substitution is the README's own: it names the flag that points at moto.
    assert "--endpoint-url" in text.split("### AWS ECS push pools", 1)[1].split("###", 1)[0]


@pytest.mark.timeout(300)
def test_the_readme_ecs_section_runs_against_moto(
    tmp_path: Path, readable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.emulators.ecs_runner import EcsRunner
    from tests.emulators.moto_server import aws_test_env

    region = "eu-west-1"
    aws_test_env(monkeypatch, tmp_path, region)  # fake credentials; nothing of the developer's
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = base_env(tmp_path / "home", api_url)
    examples = readable_dir / "push-pools" / "examples"
    examples.mkdir(parents=True)
    shutil.copy(EXAMPLES / "hello_flow.py", examples / "hello_flow.py")
    # moto's server, whose ECS tasks run as local processes of this interpreter.
    with EcsRunner(regions=(region,), stop_grace_seconds=1.0) as moto:
        # The policy provisioning attaches to the task execution role, which moto lacks.
        assert moto._server is not None
        moto._server.add_aws_managed_policies("AmazonECSTaskExecutionRolePolicy")
        # No AWS credentials of the server's own: it calls ECS and writes the code bundles to
        # the pool's bucket as the IAM user provisioning made (the pool's credentials block).
        server_env = {
            k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        server = subprocess.Popen(
            [str(PUSH_POOLS), "server", "start"],
            env=server_env,
            stdout=(tmp_path / "server.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(api_url, server)
            for line in marked_blocks(README.read_text(), against="moto")[0]:
                # The README's substitutions: moto's endpoint for AWS, any image name (moto
                # pulls nothing).
                line = line.replace("<your image>", "python:3.11-slim")
                words = shlex.split(line)
                if "--provision-infra" in words or "deprovision-infra" in words:
                    words += ["--endpoint-url", moto.endpoint]
                result = subprocess.run(
                    [str(PUSH_POOLS), *words[1:]],
                    env=env,
                    cwd=examples,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert result.returncode == 0, f"`{line}`:\n{result.stdout}\n{result.stderr}"
                assert "Traceback" not in result.stdout + result.stderr
                if words[1:3] == ["deployment", "run"]:
                    assert "COMPLETED" in result.stdout, result.stdout
            # The deploy named no image: the task ran the stock image with the bootstrap.
            inspect = subprocess.run(
                [str(PUSH_POOLS), "deployment", "inspect", "hello/ecs", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            job_variables = json.loads(inspect.stdout)["job_variables"]
            assert job_variables["image"].startswith("python:3."), job_variables
            assert "/bootstrap" in str(job_variables["command"]), job_variables
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        assert moto.errors == []
