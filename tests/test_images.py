"""Image deploys: build the project with the docker SDK, push it with the registry's token, and
pin the deployment to the pushed digest. The Docker emulator (tests/emulators/docker) is the
engine; moto's server is ECR (and ECS, whose submitted task definition shows the image)."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from push_pools import DeploymentImage
from push_pools.client import Client
from push_pools.deploy.entrypoints import load_flow
from push_pools.errors import ImageError, InvalidInput
from push_pools.executors.docker.executor import DockerExecutor
from tests.conftest import wait_for_state
from tests.emulators.docker import DockerEmulator
from tests.test_docker_pool import docker_type, make_pool  # noqa: F401 (fixture)
from tests.test_ecs_executor import KEYS, REGION, Aws, aws, ecs_pool, runner  # noqa: F401

pytestmark = pytest.mark.store

ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# moto's ECR answers every token request with this password for the account.
ECR_PASSWORD = f"{ACCOUNT}-auth-token"

FLOWS = """
from pathlib import Path
from push_pools import flow

@flow
def shipped() -> str:
    return (Path(__file__).resolve().parent / "marker.txt").read_text()
"""


@pytest.fixture(scope="module")
def emulator() -> Iterator[DockerEmulator]:
    with DockerEmulator() as engine:
        yield engine


@pytest.fixture
def engine(emulator: DockerEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerEmulator]:
    emulator.reset()
    monkeypatch.setenv("DOCKER_HOST", emulator.docker_host)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    yield emulator
    assert emulator.errors == []


@pytest.fixture
def project(readable_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = readable_dir / "project"
    directory.mkdir()
    (directory / "flows.py").write_text(FLOWS)
    (directory / "marker.txt").write_text("from the image")
    (directory / "secret.env").write_text("TOKEN=hunter2")
    (directory / ".dockerignore").write_text("# not for images\nsecret.env\n")
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def ecr_repository(aws: Aws, client: Client, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """An ECR repository recorded for the ECS pool, as `--provision-infra` leaves it."""
    # How a user points boto3 at LocalStack or moto: the deploy's ECR token comes from there.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    ecr = aws.client("ecr")
    repo = ecr.create_repository(repositoryName=f"flows-{aws.cluster}")["repository"]
    client.save_infrastructure(
        "ecs-pool",
        {
            "step": "repository",
            "kind": "aws:ecr:repository",
            "identifier": repo["repositoryArn"],
            "created": True,
            "data": {"name": repo["repositoryName"], "uri": repo["repositoryUri"]},
        },
    )
    return str(repo["repositoryUri"])


def _deployments(client: Client) -> list[dict[str, Any]]:
    return client.request("GET", "/deployments")


def test_an_image_deploy_pushes_with_ecrs_token_and_runs_use_the_digest(
    client: Client,
    engine: DockerEmulator,
    project: Path,
    ecs_pool: str,  # noqa: F811
    ecr_repository: str,
    aws: Aws,  # noqa: F811
) -> None:
    engine.registry.require_auth(ECR_HOST, "AWS", ECR_PASSWORD)
    flow = load_flow("flows.py:shipped", project)
    deployment = flow.deploy(
        "boxed",
        ecs_pool,
        image=DeploymentImage("flows", tag="v1", dockerfile="auto"),
        client=client,
        quiet=True,
    )

    build = engine.builds[-1]
    assert "flows.py" in build.context and "marker.txt" in build.context
    assert "secret.env" not in build.context  # .dockerignore'd
    # Named without a registry: it went to the pool's repository.
    assert [str(tag) for tag in build.tags] == [f"{ecr_repository}:flows-v1"]
    push = engine.pushes[-1]
    assert push.auth is not None
    assert (push.auth["username"], push.auth["password"]) == ("AWS", ECR_PASSWORD)
    digest = push.digests["flows-v1"]
    pinned = f"{ecr_repository}@{digest}"
    assert deployment.job_variables["image"] == pinned
    assert deployment.pull_steps == [] and deployment.path is None  # no bundle, no pull step
    # The generated image holds the project and installs this push-pools from its wheel.
    files = engine.image(f"{ecr_repository}:flows-v1").files()
    assert files["/opt/push-pools/flows/marker.txt"] == b"from the image"
    assert any(name.endswith("-py3-none-any.whl") for name in files)

    run = client.create_run(str(deployment.id), {})
    wait_for_state(client, run["id"])
    ecs = aws.client("ecs")
    families = ecs.list_task_definitions()["taskDefinitionArns"]
    images = {
        container["image"]
        for arn in families
        for container in ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"][
            "containerDefinitions"
        ]
    }
    assert pinned in images


def test_an_image_deploy_runs_the_code_inside_the_image_on_a_docker_pool(
    client: Client,
    engine: DockerEmulator,
    project: Path,
    worker_factory: Callable[..., Any],
    cli: Callable[..., Any],
) -> None:
    make_pool(client, image_pull_policy="Never")
    result = cli(
        "deploy", "flows.py:shipped", "-n", "boxed", "-p", "docker-pool",
        "--image", "acme/flows:v2", "--dockerfile", "auto", "--no-push", "--no-prompt",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "image acme/flows:v2 built" in result.stdout
    deployment = client.get_deployment_by_name("shipped/boxed")
    assert deployment["job_variables"]["image"] == "acme/flows:v2"
    assert engine.pushes == []

    (project / "marker.txt").write_text("changed after the build")
    worker_factory("docker-pool", executor=DockerExecutor(output=io.StringIO()))
    run = client.create_run(deployment["id"], {})
    done = wait_for_state(client, run["id"], timeout=60)
    assert done["state"] == "COMPLETED", done["state_message"]
    assert done["result"] == "from the image"


# --- bad input ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_engine_reachable_is_one_line_naming_docker_host(
    client: Client,
    project: Path,
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_pool(client, "pool")
    host = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("DOCKER_HOST", host)
    result = cli(
        "deploy", "flows.py:shipped", "-n", "boxed", "-p", "pool", "--image", "acme/flows",
        "--no-prompt",
    )  # fmt: skip
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"no Docker engine is reachable (DOCKER_HOST={host})" in lines[0]
    assert "Traceback" not in result.stderr
    assert _deployments(client) == []


def test_a_missing_dockerfile_is_one_line(
    client: Client, engine: DockerEmulator, project: Path, cli: Callable[..., Any]
) -> None:
    make_pool(client, "pool")
    result = cli(
        "deploy", "flows.py:shipped", "-n", "boxed", "-p", "pool", "--image", "acme/flows",
        "--no-prompt",
    )  # fmt: skip
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert f"Dockerfile not found: {project / 'Dockerfile'}" in text
    assert "dockerfile='auto'" in text
    assert engine.builds == [] and _deployments(client) == []


def test_a_build_failure_shows_the_failing_steps_output(
    client: Client, engine: DockerEmulator, project: Path
) -> None:
    make_pool(client, "pool")
    (project / "requirements.txt").write_text("no-such-package==9.9\n")
    engine.fail_build_on(
        "requirements.txt",
        output=(
            "ERROR: Could not find a version that satisfies the requirement no-such-package==9.9",
            "ERROR: No matching distribution found for no-such-package==9.9",
        ),
    )
    flow = load_flow("flows.py:shipped", project)
    with pytest.raises(ImageError) as failure:
        flow.deploy(
            "boxed",
            "pool",
            image=DeploymentImage("acme/flows", dockerfile="auto"),
            client=client,
            quiet=True,
        )
    message = failure.value.message
    assert message.startswith("building acme/flows:latest failed: ")
    assert "No matching distribution found for no-such-package==9.9" in message
    assert _deployments(client) == []


def test_a_denied_push_shows_the_registrys_message_and_stores_nothing(
    client: Client, engine: DockerEmulator, project: Path
) -> None:
    make_pool(client, "pool")
    (project / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /app\nWORKDIR /app\n")
    engine.deny_push("registry.example.com", "you may not push to team/")
    flow = load_flow("flows.py:shipped", project)
    with pytest.raises(ImageError) as failure:
        flow.deploy(
            "boxed", "pool", image="registry.example.com/team/flows:1", client=client, quiet=True
        )
    assert failure.value.message == (
        "pushing registry.example.com/team/flows:1 failed: denied: you may not push to team/"
    )
    assert [str(tag) for tag in engine.builds[-1].tags] == ["registry.example.com/team/flows:1"]
    assert _deployments(client) == []


def test_an_entrypoint_left_out_by_dockerignore_is_warned_about(
    client: Client, engine: DockerEmulator, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_pool(client, "pool")
    (project / ".dockerignore").write_text("*.py\n")
    flow = load_flow("flows.py:shipped", project)
    flow.deploy(
        "boxed",
        "pool",
        image=DeploymentImage("acme/flows", dockerfile="auto"),
        push=False,
        client=client,
        quiet=True,
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "the entrypoint 'flows.py:shipped' is left out of the image by .dockerignore" in err


def test_ecr_token_failure_names_the_registry(
    engine: DockerEmulator,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from push_pools.deploy.registries import auth_config_for

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ImageError) as failure:
        auth_config_for(ECR_HOST)
    assert failure.value.message.startswith(
        f"cannot get an ECR authorization token for {ECR_HOST}: "
    )
    assert boto3  # the SDK the token comes from


def test_a_pool_that_runs_no_images_is_refused_before_any_build(
    client: Client, engine: DockerEmulator, project: Path
) -> None:
    client.create_work_pool({"name": "local", "type": "process"})
    flow = load_flow("flows.py:shipped", project)
    with pytest.raises(InvalidInput) as refused:
        flow.deploy("boxed", "local", image="acme/flows", client=client, quiet=True)
    assert "work pool 'local' (process) runs no images" in refused.value.message
    assert engine.builds == [] and _deployments(client) == []


def test_project_file_build_and_push_steps_pin_the_deployment_to_the_digest(
    client: Client, engine: DockerEmulator, project: Path, cli: Callable[..., Any]
) -> None:
    make_pool(client, "pool")
    (project / "push-pools.yaml").write_text(
        "build:\n"
        "  - push_pools.deploy.steps.build_docker_image:\n"
        "      id: build-image\n"
        "      image_name: registry.example.com/team/flows\n"
        "      tag: v3\n"
        "      dockerfile: auto\n"
        "push:\n"
        "  - prefect_docker.deployments.steps.push_docker_image:\n"
        "      id: push-image\n"
        "      image_name: '{{ build-image.image_name }}'\n"
        "      tag: '{{ build-image.tag }}'\n"
        "      credentials: {username: robot, password: s3cret}\n"
        "deployments:\n"
        "  - name: boxed\n"
        "    entrypoint: flows.py:shipped\n"
        "    work_pool:\n"
        "      name: pool\n"
        "      job_variables: {image: '{{ push-image.image }}'}\n"
    )
    engine.registry.require_auth("registry.example.com", "robot", "s3cret")
    result = cli("deploy", "-n", "boxed", "--no-prompt")
    assert result.exit_code == 0, result.stdout + result.stderr
    push = engine.pushes[-1]
    digest = push.digests["v3"]
    deployment = client.get_deployment_by_name("shipped/boxed")
    assert deployment["job_variables"]["image"] == f"registry.example.com/team/flows@{digest}"
    # No pull steps of its own, yet no bundle: the code is in the image the build step made.
    assert deployment["pull_steps"] == [] and deployment["path"] is None
    assert "secret.env" not in engine.builds[-1].context


def test_artifact_registry_gets_an_oauth_token_of_the_google_credentials(
    client: Client,
    engine: DockerEmulator,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import httpx

    from tests.emulators.gcp import GcpEmulator
    from tests.gcp_helpers import PROJECT, gcp_test_env

    make_pool(client, "gcp-pool")
    url = f"us-central1-docker.pkg.dev/{PROJECT}/flows"
    client.save_infrastructure(
        "gcp-pool",
        {
            "step": "repository",
            "kind": "gcp:artifactregistry:repository",
            "identifier": f"projects/{PROJECT}/locations/us-central1/repositories/flows",
            "created": True,
            "data": {"url": url},
        },
    )
    with GcpEmulator() as gcp:
        gcp_test_env(monkeypatch, gcp, tmp_path)
        gcp.enable_services(PROJECT, "artifactregistry.googleapis.com")
        flow = load_flow("flows.py:shipped", project)
        deployment = flow.deploy(
            "boxed",
            "gcp-pool",
            image=DeploymentImage("flows", tag="v4", dockerfile="auto"),
            client=client,
            quiet=True,
        )
        push = engine.pushes[-1]
        assert push.auth is not None and push.auth["username"] == "oauth2accesstoken"
        # The password is an access token Google's APIs take.
        answer = httpx.get(
            f"{gcp.endpoint}/v1/projects/{PROJECT}/locations/us-central1/repositories",
            headers={"Authorization": f"Bearer {push.auth['password']}"},
        )
        assert answer.status_code == 200, answer.text
    assert deployment.job_variables["image"] == f"{url}/flows@{push.digests['v4']}"


def test_acr_gets_a_refresh_token_exchanged_for_the_azure_token(
    client: Client, engine: DockerEmulator, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.azure_helpers import azure_test_env
    from tests.emulators.azure import AzureEmulator

    make_pool(client, "aci-pool")
    with AzureEmulator() as azure:
        azure_test_env(monkeypatch, azure)
        azure.add_resource_group("flows-rg")
        registry = azure.add_registry("flows-rg", "ppflowsacr")
        client.save_infrastructure(
            "aci-pool",
            {
                "step": "registry",
                "kind": "azure:container-registry",
                "identifier": registry.id,
                "created": True,
                "data": {"name": registry.name, "login_server": registry.login_server},
            },
        )
        flow = load_flow("flows.py:shipped", project)
        deployment = flow.deploy(
            "boxed",
            "aci-pool",
            image=DeploymentImage("flows", tag="v5", dockerfile="auto"),
            client=client,
            quiet=True,
        )
        push = engine.pushes[-1]
        assert push.auth is not None
        assert push.auth["username"] == "00000000-0000-0000-0000-000000000000"
        # The password is the refresh token the registry issued to the signed-in principal.
        assert azure.state.acr.refresh_tokens[push.auth["password"]] == (
            azure.owner.object_id,
            "ppflowsacr.azurecr.io",
        )
    assert deployment.job_variables["image"] == (
        f"ppflowsacr.azurecr.io/flows@{push.digests['v5']}"
    )


def test_a_deploy_outside_the_project_root_warns_and_builds_the_flows_directory(
    client: Client,
    engine: DockerEmulator,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_pool(client, "pool")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "unrelated.txt").write_text("not part of the project")
    monkeypatch.chdir(elsewhere)
    flow = load_flow("flows.py:shipped", project)
    flow.deploy(
        "boxed",
        "pool",
        image=DeploymentImage("acme/flows", dockerfile="auto"),
        push=False,
        client=client,
        quiet=True,
    )
    err = " ".join(capsys.readouterr().err.split())
    assert f"is outside the working directory {elsewhere}" in err
    assert "Run deploy from the project root" in err
    context = engine.builds[-1].context
    assert "flows.py" in context and "unrelated.txt" not in context


def test_from_source_builds_the_source_into_the_image(
    client: Client, engine: DockerEmulator, project: Path
) -> None:
    from push_pools.deploy.sdk import from_source

    make_pool(client, "pool")
    deployment = from_source(str(project), "flows.py:shipped").deploy(
        "boxed",
        "pool",
        image=DeploymentImage("acme/flows", tag="src", dockerfile="auto"),
        push=False,
        client=client,
        quiet=True,
    )
    assert deployment.job_variables["image"] == "acme/flows:src"
    assert deployment.pull_steps == [] and deployment.path is None
    assert engine.builds[-1].context["marker.txt"] == b"from the image"


# --- the deploy wizard --------------------------------------------------------------------------


class _Terminal(io.StringIO):
    """Answers typed at a terminal: `deploy` asks only when its stdin is one."""

    def isatty(self) -> bool:
        return True


def test_the_deploy_wizard_builds_an_image_for_a_docker_pool_and_saves_its_steps(
    client: Client,
    engine: DockerEmulator,
    project: Path,
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    import yaml

    make_pool(client)
    answers = [
        "boxed",  # Deployment name
        "n",  # Run it on a cron schedule?
        "y",  # Build a custom Docker image for this deployment?
        "acme/flows",  # Image name
        "v3",  # Image tag
        "auto",  # Dockerfile
        "n",  # Push this image to a remote registry? (a docker pool's engine has it)
        "y",  # Save this deployment to push-pools.yaml?
    ]
    monkeypatch.setattr(sys, "stdin", _Terminal("\n".join(answers) + "\n"))
    result = cli("deploy", "flows.py:shipped", "-p", "docker-pool")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Build a custom Docker image" in result.stdout
    deployment = client.get_deployment_by_name("shipped/boxed")
    assert deployment["job_variables"]["image"] == "acme/flows:v3"
    assert [str(tag) for tag in engine.builds[-1].tags] == ["docker.io/acme/flows:v3"]
    assert engine.pushes == []

    # The saved file builds the same image next time, without a question.
    saved = yaml.safe_load((project / "push-pools.yaml").read_text())
    [entry] = saved["deployments"]
    assert entry["build"] == [
        {
            "build_docker_image": {
                "id": "build-image",
                "image_name": "acme/flows",
                "tag": "v3",
                "dockerfile": "auto",
            }
        }
    ]
    assert "push" not in entry
    assert entry["work_pool"]["job_variables"]["image"] == "{{ build-image.image }}"
    builds = len(engine.builds)
    again = cli("deploy", "-n", "boxed", "--no-prompt")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert len(engine.builds) == builds + 1
    assert client.get_deployment_by_name("shipped/boxed")["job_variables"]["image"] == (
        "acme/flows:v3"
    )


def test_the_deploy_wizard_asks_about_no_image_for_a_process_pool(
    client: Client, project: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    client.create_work_pool({"name": "local", "type": "process"})
    monkeypatch.setattr(sys, "stdin", _Terminal("boxed\nn\nn\n"))
    result = cli("deploy", "flows.py:shipped", "-p", "local")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Docker image" not in result.stdout
    assert client.get_deployment_by_name("shipped/boxed")["job_variables"].get("image") is None
