"""Code bundles: `deploy` carries the project's code to push and managed pools, no Docker."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from push_pools.client import Client
from push_pools.deploy.bundle import pack
from tests.bundle_helpers import (  # noqa: F401 (stock_python: a fixture)
    bootstrap_env,
    local_wheel,
    stock_python,
)
from tests.conftest import wait_for_state
from tests.test_docker_pool import docker_type, emulator, engine  # noqa: F401 (fixtures)
from tests.test_ecs_executor import aws, ecs_pool, runner  # noqa: F401 (fixtures)

pytestmark = pytest.mark.store

FLOWS = """
import os
from pathlib import Path
from push_pools import flow

@flow
def read_marker() -> dict:
    here = Path(__file__).resolve().parent
    return {"marker": (here / "marker.txt").read_text(), "dir": str(here)}

@flow
def where() -> dict:
    import sys
    import push_pools
    here = Path(__file__).resolve().parent
    return {
        "marker": (here / "marker.txt").read_text(),
        "push_pools": push_pools.__file__,
        "python": sys.executable,
    }

@flow(log_prints=True)
def probe(own: str = "", other: str = "") -> dict:
    import httpx
    api = os.environ["PUSH_POOLS_API_URL"]
    auth = {"Authorization": "Bearer " + os.environ.get("PUSH_POOLS_API_KEY", "")}
    return {
        "own": httpx.get(f"{api}/bundles/{own}", headers=auth).status_code,
        "other": httpx.get(f"{api}/bundles/{other}", headers=auth).status_code,
    }
"""


def _project(root: Path, name: str = "project", marker: str = "from the bundle") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "flows.py").write_text(FLOWS)
    (directory / "marker.txt").write_text(marker)
    return directory


@pytest.fixture
def managed(client: Client) -> str:
    client.create_work_pool({"name": "managed-pool", "type": "managed"})
    return "managed-pool"


@pytest.fixture
def in_dir(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    return monkeypatch.chdir


def _bundle_sha(deployment: dict[str, Any]) -> str:
    ((name, options),) = deployment["pull_steps"][0].items()
    assert name.endswith("pull_bundle")
    return str(options["sha256"])


# --- packing ------------------------------------------------------------------------------------


def test_ignored_vcs_and_environment_files_stay_out_and_the_bundle_is_reproducible(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    (project / ".gitignore").write_text("*.log\nbuild/\n!keep.log\n")
    (project / ".pushpoolsignore").write_text("data/\n")
    for path, text in {
        "app.log": "noise",
        "keep.log": "kept on purpose",
        "build/out.bin": "artifact",
        "data/big.csv": "1,2,3",
        ".git/config": "[core]",
        ".hg/store": "x",
        "venv/pyvenv.cfg": "home = /usr",
        "venv/lib/site.py": "x",
        "pkg/__pycache__/mod.cpython-311.pyc": "x",
        "pkg/mod.py": "VALUE = 1\n",
        "pkg/.gitignore": "secret.txt\n",
        "pkg/secret.txt": "nested ignore",
    }.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)

    (project / "dangling").symlink_to(project / "nowhere")
    first = pack(project)
    with tarfile.open(fileobj=io.BytesIO(first.data), mode="r:gz") as tar:
        names = sorted(tar.getnames())
    assert names == [
        ".gitignore",
        ".pushpoolsignore",
        "flows.py",
        "keep.log",
        "marker.txt",
        "pkg/.gitignore",
        "pkg/mod.py",
    ]
    assert first.sha256 == hashlib.sha256(first.data).hexdigest()
    # Same files, other timestamps: the same bundle, so a redeploy uploads nothing.
    os.utime(project / "flows.py", (1, 1))
    assert pack(project).sha256 == first.sha256
    (project / "marker.txt").write_text("changed")
    assert pack(project).sha256 != first.sha256


# --- the API ------------------------------------------------------------------------------------


def test_upload_is_idempotent_and_checks_the_hash(client: Client) -> None:
    data = b"not really a tarball, but bytes are bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert not client.has_bundle(sha)
    put = client.send("PUT", f"/bundles/{sha}", content=data)
    assert put.status_code == 201
    again = client.send("PUT", f"/bundles/{sha}", content=data)
    assert again.status_code == 200
    assert client.has_bundle(sha)
    assert client.download_bundle(sha) == data

    from push_pools.errors import InvalidInput

    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(InvalidInput) as exc:
        client.upload_bundle(other, data)
    assert f"not {other}" in exc.value.message
    assert not client.has_bundle(other)


def test_the_server_serves_a_wheel_of_its_own_version(client: Client) -> None:
    import importlib.metadata

    import push_pools

    filename, data = client.download_wheel()
    version = importlib.metadata.version("push-pools")
    assert filename == f"push_pools-{version}-py3-none-any.whl"
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        names = set(wheel.namelist())
        assert "push_pools/engine.py" in names and "push_pools/bootstrap.py" in names
        assert not any("__pycache__" in name for name in names)
        metadata = wheel.read(f"push_pools-{version}.dist-info/METADATA").decode()
        own = Path(push_pools.__file__).parent / "engine.py"
        assert wheel.read("push_pools/engine.py") == own.read_bytes()
    assert "Requires-Dist: httpx" in metadata
    assert client.download_wheel()[1] == data  # built once, then the same bytes


# --- deploy and run -----------------------------------------------------------------------------


def test_a_bundle_deploy_runs_the_uploaded_code_after_the_project_is_gone(
    client: Client, managed: str, readable_dir: Path, cli: Any, in_dir: Callable[[Path], None]
) -> None:
    project = _project(readable_dir)
    (project / ".gitignore").write_text("notes.txt\n")
    (project / "notes.txt").write_text("private")
    in_dir(project)
    result = cli("deploy", "flows.py:read_marker", "-n", "bundled", "-p", managed, "--no-prompt")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "code bundle" in result.stdout and "uploaded" in result.stdout
    deployment = client.get_deployment_by_name("read-marker/bundled")
    assert deployment["path"] is None
    sha = _bundle_sha(deployment)

    with tarfile.open(fileobj=io.BytesIO(client.download_bundle(sha)), mode="r:gz") as tar:
        assert "notes.txt" not in tar.getnames()

    in_dir(readable_dir)
    shutil.rmtree(project)
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "from the bundle"
    assert not final["result"]["dir"].startswith(str(project))


def test_a_redeploy_of_unchanged_code_uploads_nothing(
    server: Any, managed: str, readable_dir: Path
) -> None:
    from push_pools.deploy.entrypoints import load_flow

    project = _project(readable_dir)
    puts: list[int] = []

    def count(request: httpx.Request) -> None:
        if request.method == "PUT":
            puts.append(len(request.content))

    with Client(server.api_url) as counting:
        counting._http.event_hooks["request"].append(count)
        flow = load_flow("flows.py:read_marker", project)
        first = flow.deploy("again", managed, source_dir=project, client=counting, quiet=True)
        assert len(puts) == 1 and puts[0] > 0
        second = flow.deploy("again", managed, source_dir=project, client=counting, quiet=True)
        assert len(puts) == 1  # the server had it: 0 bytes
        assert second.pull_steps == first.pull_steps
        (project / "marker.txt").write_text("new code")
        third = flow.deploy("again", managed, source_dir=project, client=counting, quiet=True)
        assert len(puts) == 2 and third.pull_steps != first.pull_steps


def test_a_run_token_reaches_its_own_bundle_only(
    client: Client, managed: str, readable_dir: Path
) -> None:
    from push_pools.deploy.entrypoints import load_flow

    mine = _project(readable_dir, "mine", marker="mine")
    theirs = _project(readable_dir, "theirs", marker="theirs")
    probe = load_flow("flows.py:probe", mine)
    own = probe.deploy("probe", managed, source_dir=mine, client=client, quiet=True)
    other = load_flow("flows.py:read_marker", theirs).deploy(
        "theirs", managed, source_dir=theirs, client=client, quiet=True
    )
    own_sha = _bundle_sha(own.model_dump())
    other_sha = _bundle_sha(other.model_dump())
    assert own_sha != other_sha
    run = client.create_run(own.id, {"parameters": {"own": own_sha, "other": other_sha}})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"] == {"own": 200, "other": 403}


def test_requirements_go_to_the_managed_environment_cache(
    client: Client, managed: str, readable_dir: Path, cli: Any, in_dir: Callable[[Path], None]
) -> None:
    project = _project(readable_dir)
    (project / "requirements.txt").write_text("# pinned\nsix==1.16.0\n\nattrs>=23  # dates\n")
    in_dir(project)
    result = cli("deploy", "flows.py:read_marker", "-n", "reqs", "-p", managed, "--no-prompt")
    assert result.exit_code == 0, result.stdout + result.stderr
    deployment = client.get_deployment_by_name("read-marker/reqs")
    assert deployment["job_variables"]["pip_packages"] == ["six==1.16.0", "attrs>=23"]
    ((_, options),) = deployment["pull_steps"][0].items()
    assert options["install_requirements"] is False


def test_pyproject_dependencies_go_to_the_managed_environment_cache_too(
    client: Client, managed: str, readable_dir: Path
) -> None:
    from push_pools.deploy.entrypoints import load_flow

    project = _project(readable_dir)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "etl"\nversion = "1"\ndependencies = ["six==1.16.0"]\n'
    )
    flow = load_flow("flows.py:read_marker", project)
    deployment = flow.deploy("toml", managed, source_dir=project, client=client, quiet=True)
    assert deployment.job_variables["pip_packages"] == ["six==1.16.0"]
    ((_, options),) = deployment.pull_steps[0].items()
    assert options["install_requirements"] is False

    # Unreadable: left to the run, which says why (see the ECS test of it).
    (project / "pyproject.toml").write_text("[project\n")
    broken = flow.deploy("broken", managed, source_dir=project, client=client, quiet=True)
    assert "pip_packages" not in broken.job_variables
    run = client.create_run(broken.id, {})
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "CRASHED"
    assert "pyproject.toml of the code bundle is not valid TOML" in final["state_message"]


# --- bad input ----------------------------------------------------------------------------------


def test_a_bundle_over_the_limit_is_refused_and_nothing_is_stored(
    client: Client,
    managed: str,
    readable_dir: Path,
    cli: Any,
    in_dir: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _project(readable_dir)
    (project / "weights.bin").write_bytes(os.urandom(64 * 1024))
    in_dir(project)
    monkeypatch.setenv("PUSH_POOLS_MAX_BUNDLE_BYTES", str(16 * 1024))
    result = cli("deploy", "flows.py:read_marker", "-n", "big", "-p", managed, "--no-prompt")
    assert result.exit_code != 0
    message = " ".join(result.stderr.split())
    assert "over the limit of 16.0 KiB" in message
    assert "code bundle" in message and "over the limit" in message
    assert "weights.bin" in message and ".pushpoolsignore" in message
    assert "Traceback" not in result.stdout + result.stderr
    assert client.list_deployments() == []
    assert not client.has_bundle(pack(project, max_bytes=10**9).sha256)


def test_the_servers_request_limit_is_a_clear_error_too(
    server_factory: Any,
    readable_dir: Path,
    cli: Any,
    in_dir: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSH_POOLS_MAX_REQUEST_BYTES", str(32 * 1024))
    server = server_factory()
    with Client(server.api_url) as client:
        client.create_work_pool({"name": "managed-pool", "type": "managed"})
        project = _project(readable_dir)
        (project / "weights.bin").write_bytes(os.urandom(64 * 1024))
        in_dir(project)
        result = cli("deploy", "flows.py:read_marker", "-n", "big", "-p", "managed-pool")
        assert result.exit_code != 0
        message = " ".join(result.stderr.split())
        assert "uploading the code bundle" in message
        assert "PUSH_POOLS_MAX_REQUEST_BYTES" in message
        assert client.list_deployments() == []
        assert not client.has_bundle(pack(project).sha256)


def test_an_entrypoint_left_out_of_the_bundle_is_a_clear_error(
    client: Client, managed: str, readable_dir: Path, cli: Any, in_dir: Callable[[Path], None]
) -> None:
    project = _project(readable_dir)
    (project / ".pushpoolsignore").write_text("flows.py\n")
    in_dir(project)
    result = cli("deploy", "flows.py:read_marker", "-n", "gone", "-p", managed, "--no-prompt")
    assert result.exit_code != 0
    message = " ".join(result.stderr.split())
    assert "flows.py is left out of the code bundle" in message and "'!flows.py'" in message
    assert client.list_deployments() == []


def test_a_project_without_the_entrypoint_file_is_a_clear_error(
    client: Client, managed: str, readable_dir: Path
) -> None:
    from push_pools.deploy.entrypoints import load_flow
    from push_pools.errors import InvalidInput

    project = _project(readable_dir)
    elsewhere = _project(readable_dir, "elsewhere")
    flow = load_flow("flows.py:read_marker", elsewhere)
    (project / "flows.py").unlink()
    with pytest.raises(InvalidInput) as exc:
        flow.deploy(
            "missing",
            managed,
            source_dir=project,
            entrypoint="flows.py:read_marker",
            client=client,
            quiet=True,
        )
    assert "flows.py does not exist in the project directory" in exc.value.message
    assert client.list_deployments() == []


# --- a stock image: the bootstrap installs the server's wheel, then the engine pulls the code ---


def test_a_stock_image_runs_a_bundle_deploy_on_ecs_through_the_bootstrap(
    client: Client,
    ecs_pool: str,  # noqa: F811 (the fixture imported above)
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    import sys

    from push_pools.deploy.entrypoints import load_flow

    project = _project(readable_dir, marker="bundled for ECS")
    flow = load_flow("flows.py:where", project)
    deployment = flow.deploy(
        "stock",
        ecs_pool,
        source_dir=project,
        client=client,
        quiet=True,
        # Neither image nor command: a bundle deploy to a push pool gets the stock ones.
        job_variables={"env": bootstrap_env(stock_python)},
    )
    variables = deployment.job_variables
    assert variables["image"] == f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"
    assert "/bootstrap" in variables["command"] and "PUSH_POOLS_API_KEY" in variables["command"]
    assert "pprun_" not in variables["command"]  # the token comes in the env, never here
    shutil.rmtree(project)
    for _ in range(2):  # the second start finds push-pools installed in the "image" already
        run = client.create_run(deployment.id, {})
        final = wait_for_state(client, run["id"], timeout=120)
        assert final["state"] == "COMPLETED", final["state_message"]
        assert final["result"]["marker"] == "bundled for ECS"
        assert final["result"]["python"].startswith(str(stock_python))
        assert final["result"]["push_pools"].startswith(str(stock_python))  # the wheel's copy


def test_a_user_without_docker_deploys_to_an_ecs_pool_from_the_cli(
    client: Client,
    aws: Any,  # noqa: F811 (the fixture imported above)
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
    cli: Any,
    in_dir: Callable[[Path], None],
) -> None:
    from push_pools.executors.ecs import template as ecs_template
    from tests.test_ecs_executor import KEYS, REGION

    client.create_block(
        {
            "name": "moto-aws",
            "block_type": "aws-credentials",
            "data": {**KEYS, "region_name": REGION},
        }
    )
    template = ecs_template.default_template()
    properties = template["variables"]["properties"]
    # What the provisioner sets, plus the stand-in for the stock image's interpreter.
    defaults = {
        **aws.defaults(),
        "aws_credentials": "moto-aws",
        "env": bootstrap_env(stock_python),
    }
    for name, value in defaults.items():
        properties[name]["default"] = value
    client.create_work_pool(
        {"name": "my-ecs-pool", "type": "ecs:push", "base_job_template": template}
    )
    project = _project(readable_dir, marker="no docker needed")
    in_dir(project)
    result = cli("deploy", "flows.py:where", "-n", "nightly", "-p", "my-ecs-pool", "--no-prompt")
    assert result.exit_code == 0, result.stdout + result.stderr
    inspected = cli("deployment", "inspect", "where/nightly")
    assert "-slim" in inspected.stdout and "/bootstrap" in inspected.stdout
    run = cli("deployment", "run", "where/nightly", "--watch")
    assert run.exit_code == 0, run.stdout + run.stderr
    final = client.list_runs(deployment_id=client.get_deployment_by_name("where/nightly")["id"])[0]
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "no docker needed"
    assert final["result"]["push_pools"].startswith(str(stock_python))


DEPENDENT_FLOW = """
from push_pools import flow

@flow
def uses_dependency() -> str:
    import greeting_dep
    return greeting_dep.greet()
"""


def _run_dependent_project(client: Client, pool: str, project: Path, stock: Path) -> dict[str, Any]:
    from push_pools.deploy.entrypoints import load_flow

    (project / "flows.py").write_text(DEPENDENT_FLOW)
    flow = load_flow("flows.py:uses_dependency", project)
    deployment = flow.deploy(
        project.name,
        pool,
        source_dir=project,
        client=client,
        quiet=True,
        job_variables={"env": bootstrap_env(stock)},
    )
    run = client.create_run(deployment.id, {})
    return wait_for_state(client, run["id"], timeout=120)


@pytest.mark.parametrize("declared_in", ["requirements.txt", "pyproject.toml"])
def test_the_projects_dependencies_are_installed_in_the_stock_image(
    client: Client,
    ecs_pool: str,  # noqa: F811 (the fixture imported above)
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
    declared_in: str,
) -> None:
    wheel = local_wheel(readable_dir / "index", "greeting_dep", "def greet():\n    return 'hi'\n")
    project = readable_dir / "dependent"
    project.mkdir()
    if declared_in == "requirements.txt":
        (project / "requirements.txt").write_text(
            f"--no-index\n--find-links {wheel.parent}\ngreeting_dep==1.0\n"
        )
    else:
        (project / "pyproject.toml").write_text(
            "[project]\n"
            'name = "dependent"\n'
            'version = "0.1"\n'
            f'dependencies = ["greeting_dep @ {wheel.as_uri()}"]\n'
        )
    final = _run_dependent_project(client, ecs_pool, project, stock_python)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"] == "hi"


def test_a_pyproject_that_is_not_toml_crashes_the_run_saying_so(
    client: Client,
    ecs_pool: str,  # noqa: F811 (the fixture imported above)
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
    cli: Any,
) -> None:
    project = readable_dir / "broken"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project\ndependencies = [\n")
    final = _run_dependent_project(client, ecs_pool, project, stock_python)
    assert final["state"] == "CRASHED"
    assert "pyproject.toml of the code bundle is not valid TOML" in final["state_message"]
    logs = cli("flow-run", "logs", final["id"])
    assert "pyproject.toml of the code bundle is not valid TOML" in logs.stdout
    assert "Traceback" not in logs.stdout


def test_an_image_of_the_pools_or_the_deployments_own_is_kept(
    client: Client,
    ecs_pool: str,  # noqa: F811 (the fixture imported above)
    readable_dir: Path,
) -> None:
    from push_pools.deploy.entrypoints import load_flow

    project = _project(readable_dir)
    flow = load_flow("flows.py:where", project)
    own = flow.deploy(
        "own",
        ecs_pool,
        source_dir=project,
        client=client,
        quiet=True,
        job_variables={"image": "example.com/flows:1"},
    )
    assert own.job_variables["image"] == "example.com/flows:1"
    assert "command" not in own.job_variables

    template = client.get_work_pool(ecs_pool)["base_job_template"]
    template["variables"]["properties"]["image"]["default"] = "example.com/pool:2"
    client.update_work_pool(ecs_pool, {"base_job_template": template})
    pooled = flow.deploy("pooled", ecs_pool, source_dir=project, client=client, quiet=True)
    assert "image" not in pooled.job_variables and "command" not in pooled.job_variables


def test_the_bootstrap_says_what_is_missing() -> None:
    import subprocess
    import sys

    import push_pools

    script = (Path(push_pools.__file__).parent / "bootstrap.py").read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_POOLS_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "PUSH_POOLS_API_URL and PUSH_POOLS_API_KEY must be set" in result.stderr


def test_a_project_file_bundles_for_a_process_pool_only_when_asked(
    client: Client, readable_dir: Path, cli: Any, in_dir: Callable[[Path], None]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    project = _project(readable_dir)
    (project / "push-pools.yaml").write_text(
        "deployments:\n"
        "  - name: plain\n"
        "    entrypoint: flows.py:read_marker\n"
        "    work_pool: {name: pool}\n"
        "  - name: cloned\n"
        "    entrypoint: flows.py:read_marker\n"
        "    work_pool: {name: pool}\n"
        "    pull: [{set_working_directory: {directory: /tmp}}]\n"
    )
    in_dir(project)
    assert cli("deploy", "-n", "plain", "--no-prompt").exit_code == 0
    in_place = client.get_deployment_by_name("read-marker/plain")
    assert in_place["path"] == str(project.resolve())  # a worker on this machine reads it there

    result = cli("deploy", "-n", "plain", "--bundle", "--no-prompt")
    assert result.exit_code == 0, result.stdout + result.stderr
    bundled = client.get_deployment_by_name("read-marker/plain")
    assert client.has_bundle(_bundle_sha(bundled)) and bundled["path"] is None

    refused = cli("deploy", "-n", "cloned", "--bundle", "--no-prompt")
    assert refused.exit_code != 0
    assert "has pull steps of its own" in " ".join(refused.stderr.split())


def test_a_local_from_source_deploy_to_a_managed_pool_is_bundled(
    client: Client, managed: str, readable_dir: Path
) -> None:
    from push_pools.deploy.sdk import from_source

    project = _project(readable_dir)
    deployment = from_source(project, "flows.py:read_marker").deploy(
        "src", managed, client=client, quiet=True
    )
    assert client.has_bundle(_bundle_sha(deployment.model_dump()))


def test_a_docker_pool_runs_a_bundle_deploy_on_the_stock_image_through_the_bootstrap(
    client: Client,
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
    engine: Any,  # noqa: F811 (the fixture imported above)
    docker_type: None,  # noqa: F811 (the fixture imported above)
    worker_factory: Callable[..., Any],
) -> None:
    import sys

    from push_pools.deploy.entrypoints import load_flow
    from push_pools.executors.docker.executor import DockerExecutor
    from tests.bundle_helpers import where_project
    from tests.test_docker_pool import container_of

    template = client.default_base_job_template("docker")
    # Only the stand-in image's interpreter: nothing that would make push-pools importable.
    template["variables"]["properties"]["env"]["default"] = bootstrap_env(stock_python)
    client.create_work_pool(
        {"name": "docker-pool", "type": "docker", "base_job_template": template}
    )
    project = where_project(readable_dir, marker="bundled for Docker")
    flow = load_flow("flows.py:where", project)
    # No image: the code goes as a bundle, the container is the stock image with the bootstrap.
    deployment = flow.deploy("stock", "docker-pool", source_dir=project, client=client, quiet=True)
    stock = f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"
    assert deployment.job_variables["image"] == stock
    assert "/bootstrap" in deployment.job_variables["command"]
    assert deployment.pull_steps and "pull_bundle" in str(deployment.pull_steps)
    shutil.rmtree(project)  # the run's code comes from the bundle, not from here

    worker_factory("docker-pool", executor=DockerExecutor(output=io.StringIO()))
    run = client.create_run(deployment.id, {})
    final = wait_for_state(client, run["id"], timeout=120)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "bundled for Docker"
    assert final["result"]["push_pools"].startswith(str(stock_python))  # the wheel's copy
    assert container_of(engine, run["id"]).config["Image"] == stock
