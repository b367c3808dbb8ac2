"""The AWS side of push-pools (ecs:push) against moto's server on 127.0.0.1; about 30 s.

    /work/main/.venv/bin/python benchmarks/bench_aws.py [--runs 200]

1. Provisioning: build_aws_plan(...).apply() on an empty moto account, then again (a fresh Plan
   and session, the same MemoryRecorder, as a second CLI run): wall time and AWS API calls
   (a botocore `before-call` handler on the session), and the mutating calls of the re-run
   (must be 0).
2. Dispatch: an EmbeddedServer (its own dispatcher off) with an ecs:push pool whose template
   defaults come from template_defaults() of that provisioning, `--runs` runs due now, and a
   Dispatcher with the real EcsExecutor. Submissions per second until every run has an
   infrastructure id, the ECS API calls it made, and how many were RegisterTaskDefinition
   (aim: 1). moto stores the tasks; nothing runs them.

Exits 1 if a check fails (printed as FAIL lines).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _harness import log, machine_info, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGION = "us-east-1"
POOL = "bench-ecs"
MUTATING = (
    "Create",
    "Put",
    "Attach",
    "Tag",
    "Update",
    "Delete",
    "Run",
    "Register",
    "Authorize",
    "Associate",
    "Modify",
    "Detach",
    "Untag",
)
DISPATCH_TIMEOUT_S = 120.0


def fake_aws_env(tmp: Path) -> None:
    """Fake keys, a region, and nothing of the developer's AWS setup."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_CONFIG_FILE": str(tmp / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "PUSH_POOLS_HOME": str(tmp / "home"),
        }
    )


class Keys:
    """The CLI's credentials-block callbacks, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, str, str]] = {}

    def save(self, name: str, key_id: str, secret: str, region: str) -> None:
        self.saved[name] = (key_id, secret, region)

    def exists(self, name: str) -> bool:
        return name in self.saved


def provision(config: Any, recorder: Any, keys: Keys) -> tuple[dict[str, Any], dict[str, Any]]:
    from provisioners.aws import aws_session, build_aws_plan

    calls: list[str] = []
    lock = threading.Lock()

    def count(model: Any, **_: Any) -> None:
        with lock:
            calls.append(model.name)

    started = time.perf_counter()
    session = aws_session(config)
    session.events.register("before-call", count)
    plan = build_aws_plan(
        config, recorder, save_credentials=keys.save, credentials_exist=keys.exists, session=session
    )
    outputs = plan.apply()
    seconds = time.perf_counter() - started
    mutating = [c for c in calls if c.startswith(MUTATING)]
    return outputs, {
        "seconds": seconds,
        "api_calls": len(calls),
        "mutating_calls": len(mutating),
        "mutating": sorted(Counter(mutating).items()),
        "by_operation": dict(sorted(Counter(calls).items())),
    }


class CountingEcs:
    """The real EcsExecutor; the first submit hooks a call counter onto its shared clients."""

    def __init__(self) -> None:
        from push_pools.executors.ecs.executor import EcsExecutor

        self.real = EcsExecutor()
        self.calls: list[str] = []
        self.submitted: list[float] = []
        self._lock = threading.Lock()
        self._hooked = False

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append(model.name)

    def submit(self, submission: Any) -> str:
        with self._lock:
            if not self._hooked:
                from push_pools.executors.ecs.job import EcsJob

                # run_task goes through a second ECS client without retries; it has no public
                # accessor, so reach it through the executor's connection for this config.
                job = EcsJob.from_configuration(submission.job_configuration)
                connection = self.real._connection(job)
                clients = [connection.client(s) for s in ("ecs", "logs")]
                clients.append(connection.client("ecs", retry=False))
                for client in clients:
                    client.meta.events.register("before-call", self._count)
                self._hooked = True
        result = self.real.submit(submission)
        with self._lock:
            self.submitted.append(time.perf_counter())
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def dispatch(endpoint: str, outputs: Any, config: Any, keys: Keys, runs: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from provisioners.aws import template_defaults
    from push_pools.client import Client
    from push_pools.dispatch import Dispatcher
    from push_pools.embedded import EmbeddedServer
    from push_pools.executors.ecs import template as ecs_template
    from push_pools.store.tables import FlowRun

    with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp:
        server = EmbeddedServer(
            database_url=f"sqlite:///{tmp}/store.db", run_dispatcher=False
        ).start()
        try:
            defaults = {**template_defaults(outputs, config), "endpoint_url": endpoint}
            with Client(server.api_url) as client:
                key_id, secret, region = keys.saved[defaults["aws_credentials"]]
                client.create_block(
                    {
                        "name": defaults["aws_credentials"],
                        "block_type": "aws-credentials",
                        "data": {
                            "aws_access_key_id": key_id,
                            "aws_secret_access_key": secret,
                            "region_name": region,
                        },
                    }
                )
                template = ecs_template.default_template()
                properties = template["variables"]["properties"]
                for name, value in defaults.items():
                    properties[name]["default"] = value
                client.create_work_pool(
                    {"name": POOL, "type": "ecs:push", "base_job_template": template}
                )
                deployment = client.upsert_deployment(
                    {
                        "name": "bench",
                        "flow_name": "trivial",
                        "entrypoint": "flows.py:trivial",
                        "work_pool_name": POOL,
                    }
                )
                now = datetime.now(UTC).isoformat()
                for i in range(runs):
                    client.create_run(
                        deployment["id"], {"parameters": {"i": i}, "scheduled_time": now}
                    )
            executor = CountingEcs()
            dispatcher = Dispatcher(
                server.store,
                api_url=server.api_url,
                name="bench",
                executor_factory=lambda _pool_type: executor,
            )
            import push_pools.store.blocks  # noqa: F401  (lazy import, outside the clock)

            try:
                started = time.perf_counter()
                calls = 0
                while True:
                    calls += 1
                    dispatcher.dispatch_once()
                    with server.store.session() as session:
                        done = session.scalar(
                            select(func.count())
                            .select_from(FlowRun)
                            .where(FlowRun.infrastructure_id.is_not(None))
                        )
                    if done >= runs:
                        break
                    if time.perf_counter() - started > DISPATCH_TIMEOUT_S:
                        raise RuntimeError(f"only {done}/{runs} submitted")
                seconds = time.perf_counter() - started
            finally:
                dispatcher.stop()
            with server.store.session() as session:
                states = Counter(
                    dict(
                        session.execute(
                            select(FlowRun.state_type, func.count()).group_by(FlowRun.state_type)
                        ).all()
                    )
                )
        finally:
            server.stop()
    by_op = Counter(executor.calls)
    return {
        "runs": runs,
        "seconds": seconds,
        "submissions_per_s": runs / seconds,
        "dispatch_once_calls": calls,
        "ecs_api_calls": len(executor.calls),
        "register_task_definition_calls": by_op["RegisterTaskDefinition"],
        "run_task_calls": by_op["RunTask"],
        "by_operation": dict(sorted(by_op.items())),
        "states": dict(states),
        "task_definition_deployment": deployment["id"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=200, help="runs dispatched to ECS (default 200)")
    args = ap.parse_args()
    load_start = os.getloadavg()
    fails: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-aws-env-") as tmp:
        fake_aws_env(Path(tmp))
        from provisioners.aws import AwsProvisionConfig
        from provisioners.plan import MemoryRecorder
        from tests.emulators.moto_server import MotoServer

        log("moto")
        with MotoServer() as moto:
            moto.add_aws_managed_policies("AmazonECSTaskExecutionRolePolicy")
            config = AwsProvisionConfig(POOL, region=REGION, endpoint_url=moto.endpoint)
            recorder, keys = MemoryRecorder(), Keys()
            log("provision from empty")
            outputs, first = provision(config, recorder, keys)
            log("provision again")
            _, again = provision(config, recorder, keys)
            if again["mutating_calls"]:
                fails.append(f"FAIL: re-provision made mutating calls: {again['mutating']}")
            log(f"dispatch {args.runs} runs to ECS")
            ecs = dispatch(moto.endpoint, outputs, config, keys, args.runs)
            if ecs["register_task_definition_calls"] != 1:
                fails.append(
                    f"FAIL: {ecs['register_task_definition_calls']} RegisterTaskDefinition calls"
                )
            if ecs["run_task_calls"] != args.runs:
                fails.append(f"FAIL: {ecs['run_task_calls']} RunTask calls for {args.runs} runs")
            ecs_client = _client(moto.endpoint, "ecs")
            prefix = f"push-pools-{POOL}-"
            listed = ecs_client.list_task_definition_families(familyPrefix=prefix)
            families = listed["families"]
            revisions = sum(
                len(ecs_client.list_task_definitions(familyPrefix=f)["taskDefinitionArns"])
                for f in families
            )
            ecs["task_definition_revisions"] = revisions
    load_end = os.getloadavg()
    rows = [
        ["provision, empty account: wall", f"{first['seconds']:.2f} s"],
        ["provision, empty account: API calls", str(first["api_calls"])],
        ["provision, empty account: mutating calls", str(first["mutating_calls"])],
        ["re-provision: wall", f"{again['seconds']:.2f} s"],
        ["re-provision: API calls", str(again["api_calls"])],
        ["re-provision: mutating calls (aim 0)", str(again["mutating_calls"])],
        [f"dispatch {args.runs} runs: until all have an id", f"{ecs['seconds']:.2f} s"],
        [f"dispatch {args.runs} runs: submissions/s", f"{ecs['submissions_per_s']:.1f}"],
        [f"dispatch {args.runs} runs: ECS API calls", str(ecs["ecs_api_calls"])],
        ["RegisterTaskDefinition calls (aim 1)", str(ecs["register_task_definition_calls"])],
        ["task definition revisions in moto", str(ecs["task_definition_revisions"])],
    ]
    print()
    table = print_table(["metric", "value"], rows)
    for line in fails:
        print(line)
    payload = {
        "benchmark": "bench_aws",
        "date": time.strftime("%Y-%m-%d"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "provision_empty": first,
        "provision_again": again,
        "dispatch": ecs,
        "fails": fails,
        "wall_s": time.monotonic() - started,
        "table": table,
    }
    path = write_json("bench-aws", payload)
    print(f"\nwrote {path} ({payload['wall_s']:.0f} s)")
    return 1 if fails else 0


def _client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


if __name__ == "__main__":
    sys.exit(main())
