"""The cloud-run:push pool: CloudRunExecutor against the GCP emulator over HTTP.

tests/emulators/gcp runs each Cloud Run execution as a local subprocess with the command, args
and environment the executor submitted, reports its real exit code and keeps its output as Cloud
Logging entries; Google's clients are never patched, and every call carries a token made from a
real service-account key. Part (a) drives the executor directly, part (b) a whole server whose
dispatcher starts runs on "Cloud Run".
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from push_pools import pool_types, templates
from push_pools.errors import AuthenticationError, InvalidInput, PushPoolsError
from push_pools.executors.base import (
    InfrastructureState,
    InfrastructureStatus,
    Retirement,
    Submission,
)
from push_pools.executors.cloud_run import checks
from push_pools.executors.cloud_run.executor import CloudRunExecutor
from push_pools.executors.cloud_run.template import POOL_TYPE, default_template
from tests.bundle_helpers import bootstrap_env, stock_python, where_project  # noqa: F401
from tests.conftest import deploy, wait_for_state
from tests.emulators.gcp import GcpEmulator
from tests.emulators.gcp.run.models import Execution

REGION = "europe-west1"
BLOCK = "gcp-key"
# "python" here and in every command: the emulator maps it to this interpreter.
SLEEP = "python -c 'import time; print(\"started\", flush=True); time.sleep(60)'"
# Sleeps as long as its argument says: one job, runs as long as each run's args say.
NAP = "python -c 'import sys, time; time.sleep(float(sys.argv[1]))'"
RUN_PATH = r"^POST /v2/projects/[^/]+/locations/[^/]+/jobs/[^/]+:run$"


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcpEmulator]:
    with GcpEmulator(stop_grace_seconds=1.0) as gcp_emulator:
        yield gcp_emulator
        assert gcp_emulator.errors == []


@pytest.fixture(autouse=True)
def cloud_run_type() -> None:
    """The type as its entry point would register it (the shared venv's metadata may predate
    the entry point; installing the package registers it the same way)."""
    if POOL_TYPE.name not in pool_types.names():
        pool_types.register(POOL_TYPE)


@dataclass
class Gcp:
    """A project with a control-plane service account, as the provisioner would leave it."""

    emulator: GcpEmulator
    project: str
    key_file: Path
    deployment_id: str

    @property
    def key(self) -> dict[str, Any]:
        return dict(json.loads(self.key_file.read_text()))

    def block(self) -> dict[str, Any]:
        return {"service_account_info": self.key, "project": self.project}

    def jobs(self) -> dict[str, Any]:
        prefix = f"projects/{self.project}/"
        return {n: j for n, j in self.emulator.jobs.items() if n.startswith(prefix)}

    def executions(self) -> list[Execution]:
        prefix = f"projects/{self.project}/"
        return [e for n, e in self.emulator.executions.items() if n.startswith(prefix)]

    def execution_of(self, infrastructure_id: str) -> Execution:
        found = [
            e
            for e in self.executions()
            if e.template.containers[0].env
            and any(
                v.name == "PUSH_POOLS_INFRASTRUCTURE_ID" and v.value == infrastructure_id
                for v in e.template.containers[0].env
            )
        ]
        assert len(found) == 1, found
        return found[0]


@pytest.fixture
def gcp(emulator: GcpEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Gcp]:
    project = f"proj-{uuid.uuid4().hex[:8]}"  # one per test: counts of jobs stay per test
    key_file = emulator.create_key_file(
        tmp_path / "control-plane.json",
        project=project,
        account_id="push-pools-control",
        roles=("roles/run.developer", "roles/logging.viewer"),
    )
    monkeypatch.setenv("PUSH_POOLS_GCP_ENDPOINT", emulator.endpoint)
    # Application-default credentials for executors that never saw the run's block.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    yield Gcp(emulator, project, key_file, str(uuid.uuid4()))
    emulator.faults.clear()


def job_configuration(gcp: Gcp, **variables: Any) -> dict[str, Any]:
    """The default template rendered the way the dispatcher renders it, block resolved."""
    values = {"region": REGION, "credentials": BLOCK, **variables}
    return templates.render_job_configuration(
        default_template(),
        values,
        lambda slug, name: gcp.block(),
        credential_slots=POOL_TYPE.credential_slots,
        pool_type=POOL_TYPE.name,
    )


def submission(
    gcp: Gcp, *, engine_env: dict[str, str] | None = None, **variables: Any
) -> Submission:
    run_id = str(uuid.uuid4())
    return Submission(
        flow_run_id=run_id,
        flow_run_name="test-run",
        job_configuration=job_configuration(gcp, **variables),
        engine_env=engine_env
        or {"PUSH_POOLS_FLOW_RUN_ID": run_id, "PUSH_POOLS_API_URL": "http://127.0.0.1:9/api"},
        infrastructure_name=f"pp-{run_id}-1",  # as the dispatcher names attempt 1
        pool_name="cloud-run-pool",
        deployment_id=gcp.deployment_id,
    )


def wait_status(
    executor: CloudRunExecutor,
    infrastructure_id: str,
    until: Callable[[InfrastructureStatus], bool],
    timeout: float = 60.0,
) -> InfrastructureStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = executor.status([infrastructure_id])[infrastructure_id]
        if until(status):
            return status
        assert time.monotonic() < deadline, f"still {status} after {timeout}s"
        time.sleep(0.05)


def exited(status: InfrastructureStatus) -> bool:
    return status.state == InfrastructureState.EXITED


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --------------------------------------------------------------------------- (a) the executor


def test_the_jobs_command_runs_with_job_env_engine_env_and_args(gcp: Gcp, tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; "
        'open(sys.argv[1], "w").write(json.dumps({"env": dict(os.environ), "argv": sys.argv}))'
    )
    run_id = str(uuid.uuid4())
    engine_env = {
        "PUSH_POOLS_FLOW_RUN_ID": run_id,
        "PUSH_POOLS_API_URL": "http://engine.example/api",
        "PUSH_POOLS_API_KEY": "pprun_sekrit-token",
    }
    sub = submission(
        gcp,
        command=f"python -c {shlex.quote(script)}",
        args=[str(out), "--greeting", "hello world"],
        engine_env=engine_env,
        env={"TEAM": "data-eng", "PUSH_POOLS_API_URL": "http://job-env-loses"},
    )
    executor = CloudRunExecutor()
    infrastructure_id = executor.submit(sub)
    assert infrastructure_id.startswith(f"cloud-run:{gcp.project}:{REGION}:pp-cloud-run-pool-")
    assert infrastructure_id.endswith(":" + sub.infrastructure_name)
    status = wait_status(executor, infrastructure_id, exited)
    assert (status.exit_code, status.reason) == (0, "exited"), status
    seen = json.loads(out.read_text())
    env = seen["env"]
    assert seen["argv"][1:] == [str(out), "--greeting", "hello world"]
    assert env["TEAM"] == "data-eng"
    assert env["PUSH_POOLS_API_URL"] == "http://engine.example/api"  # the engine's wins
    assert env["PUSH_POOLS_API_KEY"] == "pprun_sekrit-token"
    assert env["PUSH_POOLS_FLOW_RUN_ID"] == run_id
    # What the engine reports as its infrastructure id is the id submit returned.
    assert env["PUSH_POOLS_INFRASTRUCTURE_ID"] == infrastructure_id
    assert "PUSH_POOLS_HOME" not in env and "GOOGLE_APPLICATION_CREDENTIALS" not in env
    # The job is shared by the deployment's runs: nothing of this run, nor any credentials.
    (job,) = gcp.jobs().values()
    text = type(job.spec).to_json(job.spec)
    for private in ("pprun_sekrit-token", "data-eng", run_id, "--greeting"):
        assert private not in text
    key = gcp.key
    for execution in gcp.executions():
        execution_text = type(execution.template).to_json(execution.template)
        assert key["private_key_id"] not in execution_text + text
        assert "BEGIN PRIVATE KEY" not in execution_text + text
    assert job.spec.labels["push-pools-deployment"] == gcp.deployment_id
    assert job.spec.labels["managed-by"] == "push-pools"
    container = job.spec.template.template.containers[0]
    assert container.resources.limits == {"cpu": "1000m", "memory": "512Mi"}
    assert job.spec.template.template.max_retries == 0


def test_a_retried_submit_adopts_the_execution_instead_of_starting_another(gcp: Gcp) -> None:
    sub = submission(gcp, command=SLEEP)
    executor = CloudRunExecutor()
    first = executor.submit(sub)
    assert executor.submit(sub) == first  # the same executor
    # Another dispatcher, or this one after a restart: it knows nothing but the name.
    assert CloudRunExecutor().submit(sub) == first
    assert len(gcp.executions()) == 1
    # The next attempt of the same run is a different name: an execution of its own.
    retry = replace(sub, infrastructure_name=sub.infrastructure_name[:-1] + "2")
    second = executor.submit(retry)
    assert second != first
    assert len(gcp.executions()) == 2
    assert len(gcp.jobs()) == 1
    executor.cancel(first)
    executor.cancel(second)


def test_a_503_on_run_job_does_not_start_a_second_execution(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    # The execution starts, then the answer is lost: submit finds it instead of running again.
    gcp.emulator.faults.add(RUN_PATH, status=503, after_effect=True)
    gcp.emulator.calls.clear()
    lost_answer = executor.submit(submission(gcp, command="true"))
    assert [c.code for c in run_calls(gcp)] == ["UNAVAILABLE"]  # never called again
    assert len(gcp.executions()) == 1
    assert wait_status(executor, lost_answer, exited).exit_code == 0
    # Nothing started: submit calls again and starts exactly one.
    gcp.emulator.faults.add(RUN_PATH, status=503)
    gcp.emulator.calls.clear()
    refused_first = executor.submit(submission(gcp, command="true"))
    assert [c.code for c in run_calls(gcp)] == ["UNAVAILABLE", "OK"]
    assert len(gcp.executions()) == 2
    assert wait_status(executor, refused_first, exited).exit_code == 0
    assert gcp.execution_of(refused_first).exit_code == 0


def run_calls(gcp: Gcp) -> list[Any]:
    return [c for c in gcp.emulator.calls if c.method == "POST" and c.path.endswith(":run")]


def test_fifty_runs_of_a_deployment_make_one_job(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    subs = [submission(gcp, command="true") for _ in range(50)]
    with ThreadPoolExecutor(8) as pool:  # the dispatcher submits from 8 threads too
        ids = list(pool.map(executor.submit, subs))
    assert len(set(ids)) == 50
    assert len(gcp.jobs()) == 1
    assert len(gcp.executions()) == 50
    for execution in gcp.executions():
        gcp.emulator.wait_for_execution(execution.name)
    statuses = executor.status(ids)
    assert {s.exit_code for s in statuses.values()} == {0}
    # A new executor keeps no cache but finds the same job.
    CloudRunExecutor().submit(submission(gcp, command="true"))
    assert len(gcp.jobs()) == 1
    # A per-run override (env, args, timeout) is no new job; another image is.
    executor.submit(submission(gcp, command="true", env={"X": "1"}, timeout=30, args=["a"]))
    assert len(gcp.jobs()) == 1
    executor.submit(submission(gcp, command="true", image="python:3.13-slim"))
    assert len(gcp.jobs()) == 2


def test_a_failing_command_exits_with_its_code_and_last_lines(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = submission(
        gcp, command='python -c \'print("step 1"); print("bad thing"); raise SystemExit(7)\''
    )
    executor = CloudRunExecutor()
    infrastructure_id = executor.submit(sub)
    status = wait_status(executor, infrastructure_id, exited)
    assert (status.exit_code, status.reason, status.message) == (7, "exited", None)
    assert status.last_lines == ["step 1", "bad thing"]  # read back from Cloud Logging
    assert executor.logs(infrastructure_id, limit=1) == ["bad thing"]
    # A server restarted since submit: handed the run's submission, it uses its block.
    restarted = CloudRunExecutor()
    restarted.remember(infrastructure_id, sub)
    assert restarted.status([infrastructure_id])[infrastructure_id].exit_code == 7
    # Without it, application-default credentials (here: GOOGLE_APPLICATION_CREDENTIALS).
    fallback = CloudRunExecutor()
    assert fallback.status([infrastructure_id])[infrastructure_id].exit_code == 7
    assert fallback.logs(infrastructure_id) == ["step 1", "bad thing"]
    unknown = f"cloud-run:{gcp.project}:{REGION}:no-such-job:pp-x-1"
    assert fallback.status([unknown, "pid:12"]) == {
        unknown: InfrastructureStatus(InfrastructureState.MISSING),
        "pid:12": InfrastructureStatus(InfrastructureState.MISSING),
    }


def test_without_log_access_a_failure_is_still_reported(gcp: Gcp, tmp_path: Path) -> None:
    key_file = gcp.emulator.create_key_file(
        tmp_path / "no-logs.json",
        project=gcp.project,
        account_id="runs-only",
        roles=("roles/run.developer",),
    )
    info = json.loads(key_file.read_text())
    sub = submission(gcp, command="python -c 'raise SystemExit(4)'")
    config = dict(sub.job_configuration, credentials={"service_account_info": info})
    executor = CloudRunExecutor()
    infrastructure_id = executor.submit(replace(sub, job_configuration=config))
    status = wait_status(executor, infrastructure_id, exited)
    assert (status.exit_code, status.last_lines) == (4, [])
    assert executor.logs(infrastructure_id) == []


def test_cancel_stops_the_execution_and_its_process(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    infrastructure_id = executor.submit(submission(gcp, command=SLEEP))
    wait_status(executor, infrastructure_id, lambda s: s.state == InfrastructureState.RUNNING)
    execution = gcp.execution_of(infrastructure_id)
    wait_until(lambda: execution.output == ["started"])
    executor.cancel(infrastructure_id)
    status = wait_status(executor, infrastructure_id, exited)
    assert status.reason == "cancelled"
    assert execution.finished.is_set() and execution.tasks[0].state == "CANCELLED"
    executor.cancel(infrastructure_id)  # a second cancel of a finished execution is harmless


def test_the_timeout_variable_stops_a_run_that_takes_too_long(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    infrastructure_id = executor.submit(submission(gcp, command=SLEEP, timeout=1))
    status = wait_status(executor, infrastructure_id, exited)
    assert status.reason == "timeout"
    assert "timeout" in (status.message or "")
    assert status.last_lines == ["started"]


def test_an_image_that_cannot_be_pulled_says_so(gcp: Gcp) -> None:
    gcp.emulator.unpullable_images.add("europe-docker.pkg.dev/p/flows/etl:missing")
    executor = CloudRunExecutor()
    infrastructure_id = executor.submit(
        submission(gcp, command="true", image="europe-docker.pkg.dev/p/flows/etl:missing")
    )
    status = wait_status(executor, infrastructure_id, exited)
    assert status.exit_code is None and status.reason == "start_failed"
    assert "Image 'europe-docker.pkg.dev/p/flows/etl:missing' not found" in (status.message or "")


def test_a_changed_deployment_makes_a_new_job_and_cleanup_deletes_the_old_one(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    first = executor.submit(submission(gcp, command=NAP, args=["0"]))
    wait_status(executor, first, exited)
    executor.cleanup(first)
    (old_job,) = gcp.jobs()  # the deployment's current job stays for its next run
    # A run of the old settings is still running when the deployment changes.
    busy = executor.submit(submission(gcp, command=NAP, args=["60"]))
    assert len(gcp.jobs()) == 1  # args are per run: the same job
    changed = executor.submit(submission(gcp, command=NAP, args=["0"], memory="1Gi"))
    assert len(gcp.jobs()) == 2
    wait_status(executor, changed, exited)
    executor.cleanup(changed)
    assert old_job in gcp.jobs(), "deleted while a run still used it"
    executor.cancel(busy)
    wait_status(executor, busy, exited)
    executor.cleanup(busy)
    (new_job,) = gcp.jobs()
    assert new_job != old_job
    assert gcp.jobs()[new_job].spec.template.template.containers[0].resources.limits == {
        "cpu": "1000m",
        "memory": "1Gi",
    }
    # Another deployment's jobs are never judged by this one's runs.
    other = replace(submission(gcp, command="true"), deployment_id=str(uuid.uuid4()))
    other_id = executor.submit(other)
    wait_status(executor, other_id, exited)
    executor.cleanup(first)  # a second cleanup of an old run is harmless
    assert len(gcp.jobs()) == 2


def test_keep_job_keeps_the_old_job(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    kept = executor.submit(submission(gcp, command="true", keep_job=True))
    wait_status(executor, kept, exited)
    changed = executor.submit(submission(gcp, command="true", cpu="2", memory="1Gi"))
    wait_status(executor, changed, exited)
    executor.cleanup(changed)
    assert len(gcp.jobs()) == 2


def test_direct_vpc_egress_reaches_the_job_and_the_execution(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    subnetwork = f"projects/{gcp.project}/regions/{REGION}/subnetworks/flows"
    run = executor.submit(
        submission(
            gcp,
            command="true",
            vpc_network="default",
            vpc_subnetwork=subnetwork,
            vpc_network_tags=["flows", "egress-nat"],
            vpc_egress="all-traffic",
        )
    )
    assert wait_status(executor, run, exited).exit_code == 0
    (job,) = gcp.jobs().values()
    access = job.spec.template.template.vpc_access
    assert not access.connector
    assert access.egress == access.VpcEgress.ALL_TRAFFIC
    ((network, subnet, tags),) = [
        (i.network, i.subnetwork, list(i.tags)) for i in access.network_interfaces
    ]
    assert (network, subnet, tags) == ("default", subnetwork, ["flows", "egress-nat"])
    assert gcp.execution_of(run).template.vpc_access == access  # the run got the same network
    # The network is part of the job: another network is another job.
    executor.submit(submission(gcp, command="true", vpc_network="other"))
    assert len(gcp.jobs()) == 2


def test_bad_vpc_settings_are_refused_before_any_google_call(gcp: Gcp) -> None:
    refused = {
        "not both": {"vpc_connector_name": "conn", "vpc_network": "default"},
        "is not a VPC network": {"vpc_network": "My Network"},
        "is in region us-east1, but the job runs in europe-west1": {
            "vpc_subnetwork": "projects/p/regions/us-east1/subnetworks/flows"
        },
        "is not a subnetwork": {"vpc_subnetwork": "regions/x/flows"},
        "vpc_network_tags apply to direct VPC egress only": {"vpc_network_tags": ["flows"]},
        "a network tag is 1-63 lowercase": {"vpc_network": "default", "vpc_network_tags": ["A_"]},
        "vpc_egress must be 'all-traffic' or 'private-ranges-only'": {
            "vpc_network": "default",
            "vpc_egress": "everything",
        },
        "set vpc_network, vpc_subnetwork or vpc_connector_name too": {"vpc_egress": "all-traffic"},
    }
    gcp.emulator.calls.clear()
    for words, variables in refused.items():
        with pytest.raises(InvalidInput) as exc:
            checks.validate_job_variables({"region": REGION, **variables})
        assert words in exc.value.message, (variables, exc.value.message)
        with pytest.raises(InvalidInput) as exc:
            CloudRunExecutor().submit(submission(gcp, command="true", **variables))
        assert words in exc.value.message
        assert "\n" not in exc.value.message
    assert gcp.emulator.calls.mutating() == [] and gcp.jobs() == {}


def retirement(gcp: Gcp, deployment_id: str | None = None, **variables: Any) -> Retirement:
    """What the dispatcher hands over once a deployment is deleted."""
    return Retirement(
        deployment_id=deployment_id or gcp.deployment_id,
        pool_name="cloud-run-pool",
        job_configuration=job_configuration(gcp, **variables),
    )


def test_forgetting_a_deployment_deletes_all_its_jobs_but_no_other(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    runs = [
        executor.submit(submission(gcp, command="true")),
        executor.submit(submission(gcp, command="true", memory="1Gi")),  # a second job
        executor.submit(replace(submission(gcp, command="true"), deployment_id="other")),
        executor.submit(replace(submission(gcp, command="true"), pool_name="other-pool")),
    ]
    for run in runs:
        wait_status(executor, run, exited)
    assert len(gcp.jobs()) == 4
    executor.forget_deployment(retirement(gcp))
    left = {j.spec.labels["push-pools-deployment"] for j in gcp.jobs().values()}
    assert len(gcp.jobs()) == 2 and left == {"other", gcp.deployment_id}
    (same_deployment_other_pool,) = [
        j for j in gcp.jobs().values() if j.spec.labels["push-pools-pool"] == "other-pool"
    ]
    assert same_deployment_other_pool.spec.labels["push-pools-deployment"] == gcp.deployment_id
    executor.forget_deployment(retirement(gcp))  # again: nothing left to do, no error
    assert len(gcp.jobs()) == 2
    # A server that never ran the deployment (restarted) finds its jobs by their labels.
    CloudRunExecutor().forget_deployment(retirement(gcp, deployment_id="other"))
    assert len(gcp.jobs()) == 1


def test_a_job_still_running_a_run_is_deleted_only_after_the_run_ends(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    busy = executor.submit(submission(gcp, command=NAP, args=["60"]))
    wait_status(executor, busy, lambda s: s.state == InfrastructureState.RUNNING)
    with pytest.raises(PushPoolsError) as exc:
        executor.forget_deployment(retirement(gcp))
    assert "still runs an execution" in exc.value.message
    assert len(gcp.jobs()) == 1
    assert gcp.execution_of(busy).state == "RUNNING"  # left alone
    executor.cancel(busy)
    wait_status(executor, busy, exited)
    executor.forget_deployment(retirement(gcp))
    assert gcp.jobs() == {}


def test_keep_job_survives_the_deployment(gcp: Gcp) -> None:
    executor = CloudRunExecutor()
    wait_status(executor, executor.submit(submission(gcp, command="true", keep_job=True)), exited)
    executor.forget_deployment(retirement(gcp))
    assert len(gcp.jobs()) == 1


def test_cpu_and_memory_are_checked_before_any_google_call(gcp: Gcp) -> None:
    refused = {
        ("3", "2Gi"): "cpu '3' is not a Cloud Run size",
        ("4", "1Gi"): "memory '1Gi' does not fit cpu '4': Cloud Run allows 2Gi to 16Gi",
        ("1", "8Gi"): "Cloud Run allows 128Mi to 4Gi",
        ("250m", "1Gi"): "Cloud Run allows 128Mi to 512Mi",
        ("50m", "256Mi"): "below Cloud Run's minimum of 0.08 vCPU",
        ("one", "512Mi"): 'cpu must be a string such as "1"',
        ("1", "512MB"): "memory must be a number with a unit M, Mi, G or Gi",
        ("9", "4Gi"): "is not a Cloud Run size",
    }
    for (cpu, memory), words in refused.items():
        with pytest.raises(InvalidInput) as exc:
            checks.validate_job_variables({"cpu": cpu, "memory": memory})
        assert words in exc.value.message, (cpu, memory, exc.value.message)
    for cpu, memory in [("1000m", "512Mi"), ("0.5", "1Gi"), ("2", "8Gi"), ("8", "32Gi")]:
        checks.validate_job_variables({"cpu": cpu, "memory": memory})
    with pytest.raises(InvalidInput, match="reserved: Cloud Run sets CLOUD_RUN_"):
        checks.validate_job_variables({"env": {"CLOUD_RUN_JOB": "x"}})
    with pytest.raises(InvalidInput, match="is not a Google Cloud label"):
        checks.validate_job_variables({"labels": {"Team": "Data"}})
    # A run whose variables were never checked fails at submit with the same message, before
    # it creates or starts anything.
    gcp.emulator.calls.clear()
    with pytest.raises(InvalidInput, match="does not fit cpu '4'"):
        CloudRunExecutor().submit(submission(gcp, cpu="4", memory="1Gi"))
    assert gcp.emulator.calls.mutating() == [] and gcp.jobs() == {}


def test_missing_or_rejected_credentials_are_named(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    sub = submission(gcp, command="true")
    no_block = dict(sub.job_configuration, credentials=None)
    with pytest.raises(AuthenticationError) as exc:
        CloudRunExecutor().submit(replace(sub, job_configuration=no_block))
    assert "no Google Cloud credentials" in exc.value.message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in exc.value.message
    # A key Google no longer accepts (deleted in IAM): the run says so, in one line.
    forged = dict(gcp.key, private_key_id="0" * 40)
    bad = dict(sub.job_configuration, credentials={"service_account_info": forged})
    with pytest.raises(AuthenticationError) as exc:
        CloudRunExecutor().submit(replace(sub, job_configuration=bad))
    assert isinstance(exc.value, PushPoolsError)  # the dispatcher crashes the run with it
    assert "no longer authenticate" in exc.value.message
    assert gcp.key["private_key"] not in exc.value.message


def test_a_missing_google_library_names_the_extra(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.run_v2", None)  # as if not installed
    with pytest.raises(PushPoolsError) as exc:
        CloudRunExecutor().submit(submission(gcp, command="true"))
    assert "pip install 'push-pools[gcp]'" in exc.value.message
    assert "\n" not in exc.value.message


# --------------------------------------------------------------------------- (b) a whole server


@pytest.fixture
def cloud_run_pool(client: Any, gcp: Gcp) -> str:
    client.create_block(
        {
            "name": BLOCK,
            "block_type": "gcp-credentials",
            "data": {"service_account_info": gcp.key, "project": gcp.project},
        }
    )
    template = default_template()
    properties = template["variables"]["properties"]
    for name, value in {"region": REGION, "credentials": BLOCK}.items():
        properties[name]["default"] = value
    client.create_work_pool(
        {"name": "cloud-run-pool", "type": "cloud-run:push", "base_job_template": template}
    )
    return "cloud-run-pool"


@pytest.mark.store
def test_a_deployment_runs_to_completion_on_cloud_run(
    client: Any, cli: Any, flow_dir: Path, cloud_run_pool: str, gcp: Gcp
) -> None:
    deployment = deploy(client, flow_dir, "greet", pool=cloud_run_pool)
    result = cli("deployment", "run", "greet/test", "--param", "name=Cloud Run", "--watch")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "hello Cloud Run" in result.stdout
    run = client.list_runs(deployment_id=deployment["id"])[0]
    assert run["state"] == "COMPLETED" and run["result"] == "greeted Cloud Run"
    states = client.run_states(run["id"])
    assert [s["type"] for s in states] == [
        "SCHEDULED",
        "PENDING",
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    assert states[2]["name"] == "Submitted"
    infrastructure_id = states[2]["details"]["infrastructure_id"]
    assert infrastructure_id.startswith(f"cloud-run:{gcp.project}:{REGION}:")
    assert infrastructure_id.endswith(f":pp-{run['id']}-1")
    assert run["infrastructure_id"] == infrastructure_id  # what the engine reported
    logs = cli("flow-run", "logs", run["id"])
    assert "hello Cloud Run" in logs.stdout
    # What run_job carried (readable by anyone with run.executions.get): the run's own token.
    env = gcp.execution_of(infrastructure_id).env
    assert env["PUSH_POOLS_API_KEY"].startswith("pprun_")
    assert env["PUSH_POOLS_FLOW_RUN_ID"] == run["id"]


@pytest.mark.store
def test_a_crashing_flow_is_crashed_with_its_exit_code_and_output(
    client: Any, flow_dir: Path, cloud_run_pool: str
) -> None:
    deployment = deploy(client, flow_dir, "crash", pool=cloud_run_pool)
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=40)
    assert final["state"] == "CRASHED"
    assert "exited with code 3" in final["state_message"]
    assert "about to die" in final["state_message"]  # the tail from Cloud Logging


@pytest.mark.store
def test_cancelling_a_running_run_cancels_its_execution(
    client: Any, cli: Any, flow_dir: Path, cloud_run_pool: str, gcp: Gcp
) -> None:
    deployment = deploy(client, flow_dir, "sleepy", pool=cloud_run_pool)
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 60}})
    running = wait_for_state(client, run["id"], {"RUNNING"}, timeout=30)
    execution = gcp.execution_of(running["infrastructure_id"])
    assert cli("flow-run", "cancel", run["id"]).exit_code == 0
    assert wait_for_state(client, run["id"], timeout=30)["state"] == "CANCELLED"
    gcp.emulator.wait_for_execution(execution.name, timeout=30)
    assert execution.tasks[0].state == "CANCELLED"


@pytest.mark.store
def test_invalid_cpu_or_memory_is_refused_at_deploy_time(
    client: Any, flow_dir: Path, cloud_run_pool: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        deploy(
            client,
            flow_dir,
            "greet",
            pool=cloud_run_pool,
            job_variables={"cpu": "4", "memory": "1Gi"},
        )
    assert "does not fit cpu '4'" in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        deploy(client, flow_dir, "greet", pool=cloud_run_pool, job_variables={"memory": "1TB"})
    assert "memory" in exc.value.message
    assert client.list_deployments() == []


JOB_DELETE = r"^DELETE /v2/projects/[^/]+/locations/[^/]+/jobs/[^/]+$"


def job_deletes(gcp: Gcp) -> list[Any]:
    return [
        c
        for c in gcp.emulator.calls
        if re.search(JOB_DELETE, f"{c.method} {c.path}") and f"/{gcp.project}/" in c.path
    ]


def test_deleting_a_deployment_deletes_its_job_once_its_last_run_ends(
    client: Any, flow_dir: Path, cloud_run_pool: str, gcp: Gcp
) -> None:
    deployment = deploy(client, flow_dir, "sleepy", pool=cloud_run_pool)
    done = client.create_run(deployment["id"], {"parameters": {"seconds": 0}})
    assert wait_for_state(client, done["id"], timeout=40)["state"] == "COMPLETED"
    running = client.create_run(deployment["id"], {"parameters": {"seconds": 60}})
    execution = gcp.execution_of(
        wait_for_state(client, running["id"], {"RUNNING"}, timeout=30)["infrastructure_id"]
    )
    assert len(gcp.jobs()) == 1
    # The first deletion is refused: the server tries again later, without being asked.
    gcp.emulator.faults.add(JOB_DELETE, code="PERMISSION_DENIED")
    client.delete_deployment(deployment["id"], force=True)
    wait_until(lambda: gcp.jobs() == {}, timeout=60)
    assert wait_for_state(client, running["id"], timeout=5)["state"] == "CANCELLED"
    # The run was cancelled first (the forced delete), its job deleted after; the refused
    # attempt was retried.
    calls = [f"{c.method} {c.path}" for c in gcp.emulator.calls]
    cancelled_at = calls.index(f"POST /v2/{execution.name}:cancel")
    assert cancelled_at < calls.index(f"DELETE /v2/{execution.job_name}")
    assert [c.code for c in job_deletes(gcp)] == ["PERMISSION_DENIED", "OK"]
    deleted_at = len(gcp.emulator.calls)
    time.sleep(2.5)  # a few dispatcher ticks: the finished note makes no call again
    later = list(gcp.emulator.calls)[deleted_at:]
    assert not [c for c in later if "/jobs" in c.path and f"/{gcp.project}/" in c.path]


def test_deleting_a_pool_deletes_its_deployments_jobs(
    client: Any, flow_dir: Path, cloud_run_pool: str, gcp: Gcp
) -> None:
    deployment = deploy(client, flow_dir, "sleepy", pool=cloud_run_pool)
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 0}})
    assert wait_for_state(client, run["id"], timeout=40)["state"] == "COMPLETED"
    assert len(gcp.jobs()) == 1
    client.delete_work_pool(cloud_run_pool, force=True)
    wait_until(lambda: gcp.jobs() == {}, timeout=30)
    # Deleting the deployment afterwards deletes nothing twice.
    client.delete_deployment(deployment["id"], force=True)
    time.sleep(2.5)
    assert len(job_deletes(gcp)) == 1


def test_bad_vpc_settings_are_refused_at_deploy_time(
    client: Any, flow_dir: Path, cloud_run_pool: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        deploy(
            client,
            flow_dir,
            "greet",
            pool=cloud_run_pool,
            job_variables={"vpc_connector_name": "conn", "vpc_subnetwork": "flows"},
        )
    assert "not both" in exc.value.message
    assert client.list_deployments() == []
    deployed = deploy(
        client, flow_dir, "greet", pool=cloud_run_pool, job_variables={"vpc_subnetwork": "flows"}
    )
    assert deployed["job_variables"]["vpc_subnetwork"] == "flows"


# --------------------------------------------------------------------------- the execution index


@dataclass
class _FakeExecution:
    """What the index reads of an Execution: name, create_time, template env."""

    name: str
    created: float

    def __contains__(self, field: str) -> bool:
        return field == "create_time"

    @property
    def create_time(self) -> Any:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.created, UTC)


@dataclass
class _Page:
    executions: list[_FakeExecution]


def test_the_index_reads_each_execution_about_once_and_trusts_no_order() -> None:
    from push_pools.executors.cloud_run.index import OVERLAP_SECONDS, ExecutionIndex

    listed: list[list[_FakeExecution]] = []
    reads: list[int] = []

    def pages(again: bool) -> Iterator[_Page]:
        newest_first = sorted(listed[-1], key=lambda e: -e.created)
        for start in range(0, len(newest_first), 3):
            reads.append(len(newest_first[start : start + 3]))
            yield _Page(newest_first[start : start + 3])

    index = ExecutionIndex(lambda e: f"id-{e.name}")
    old = [_FakeExecution(f"e{i}", 1000.0 + i) for i in range(9)]
    listed.append(old)
    assert index.find("job", "id-e2", pages) == "e2" and sum(reads) == 9  # a first full read
    reads.clear()
    new = _FakeExecution("e9", 1000.0 + 9 + 2 * OVERLAP_SECONDS)
    listed.append([*old, new])
    assert index.find("job", "id-e9", pages) == "e9"
    # Stopped where the first listing began (less its overlap), not a full read again.
    assert sum(reads) == 6
    reads.clear()
    assert index.find("job", "id-e4", pages) == "e4" and reads == []  # known: no call
    assert index.find("job", "id-never", pages) is None and sum(reads) == 3

    # A listing that is not newest first is read to its end, whatever was read before.
    def shuffled(again: bool) -> Iterator[_Page]:
        items = [*old, new, _FakeExecution("late", 1005.5)]
        reads.append(len(items))
        yield _Page(items[::2])
        yield _Page(items[1::2])

    reads.clear()
    assert index.find("job", "id-late", shuffled) == "late"


@pytest.mark.store
def test_a_bundle_deploy_runs_on_the_stock_image_through_the_bootstrap(
    client: Any,
    cloud_run_pool: str,
    gcp: Gcp,
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    from push_pools.deploy.entrypoints import load_flow

    project = where_project(readable_dir, "bundled for Cloud Run")
    deployment = load_flow("flows.py:where", project).deploy(
        "stock",
        cloud_run_pool,
        source_dir=project,
        client=client,
        quiet=True,
        job_variables={"env": bootstrap_env(stock_python)},
    )
    run = client.create_run(deployment.id, {})
    final = wait_for_state(client, run["id"], timeout=120)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "bundled for Cloud Run"
    assert final["result"]["push_pools"].startswith(str(stock_python))  # the wheel's copy
    container = gcp.execution_of(final["infrastructure_id"]).template.containers[0]
    assert container.image == f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"
    assert container.command[:2] == ["python", "-c"] and "/bootstrap" in container.command[2]
