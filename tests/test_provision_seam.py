"""A cloud is added by installing a package: its provisioner's flags, help, credentials block
type and teardown reach the CLI with no edit in push-pools.

The "cloud" here is a directory (TOY_CLOUD): a resource is a file in it. The plug-in is a real
installed distribution (a dist-info with entry points on sys.path), and the CLI runs in its own
process, as a user's would, so it builds its flags from what it finds at start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioners import registry
from push_pools import pool_types

pytestmark = pytest.mark.store

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = """
import os
from pathlib import Path

from provisioners.options import ProvisionerSpec, ProvisionOption
from provisioners.plan import Plan, ResourceRecord, StepCheck, StepStatus
from provisioners.registry import Preflight
from push_pools.pool_types import PoolType


def _template():
    return {
        "job_configuration": {"zone": "{{ zone }}", "credentials": "{{ credentials }}"},
        "variables": {
            "type": "object",
            "properties": {"zone": {"type": "string"}, "credentials": {"type": "string"}},
        },
    }


POOL_TYPE = PoolType(
    name="toy:push",
    description="Runs flows on a toy cloud.",
    default_template=_template,
    executor="toy_cloud:Executor",
    is_push=True,
)

PROVISIONER = ProvisionerSpec(
    cloud="toy",
    pool_types=("toy:push",),
    credentials_block_type="secret",
    provisioner="toy_cloud:ToyProvisioner",
    creates="a machine file",
    options=(
        ProvisionOption("zone", "Toy zone to create the machine in."),
        ProvisionOption("region", "Toy region (unused)."),
    ),
)


class Machine:
    id = "toy-machine"
    title = "toy machine"

    def check(self, ctx):
        path = ctx.cloud / f"{ctx.pool}-{ctx.zone}"
        if path.exists():
            return StepCheck(StepStatus.EXISTS, str(path), self._record(ctx))
        return StepCheck(StepStatus.CREATE, str(path))

    def _record(self, ctx):
        return ResourceRecord(self.id, "toy:machine", ctx.pool, True, {"zone": ctx.zone})

    def create(self, ctx):
        (ctx.cloud / f"{ctx.pool}-{ctx.zone}").write_text("up")
        ctx.credentials.save(f"{ctx.pool}-toy-key", {"value": "s3cret"})
        return self._record(ctx)

    def update(self, ctx, record):
        return record

    def delete(self, ctx, record):
        (ctx.cloud / f"{ctx.pool}-{record.data['zone']}").unlink()


class Ctx:
    pass


class ToyProvisioner:
    cloud = "toy"

    def __init__(self, pool_name, values, *, records=()):
        self.pool = pool_name
        # Where it was provisioned comes from the records when the flags do not say.
        pinned = next((r.data["zone"] for r in records if r.step == "toy-machine"), None)
        self.zone = values.get("zone") or pinned or "z0"

    def preflight(self):
        return Preflight("toy-account", "tester", self.zone, "", scope="account")

    def plan(self, recorder, *, credentials):
        ctx = Ctx()
        ctx.cloud, ctx.pool, ctx.zone = Path(os.environ["TOY_CLOUD"]), self.pool, self.zone
        ctx.credentials = credentials
        return Plan([Machine()], ctx, recorder, cloud="toy")

    def template_defaults(self, outputs):
        return {"zone": outputs["toy-machine"].data["zone"], "credentials": f"{self.pool}-toy-key"}

    def credentials_block_name(self):
        return f"{self.pool}-toy-key"
"""


@pytest.fixture
def toy_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plug-in installed on sys.path (this process: the server) and PYTHONPATH (the CLI)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_cloud.py").write_text(PLUGIN)
    info = site / "toy_cloud-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-cloud\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[push_pools.pool_types]\ntoy = toy_cloud:POOL_TYPE\n\n"
        "[push_pools.provisioners]\ntoy = toy_cloud:PROVISIONER\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "toy_cloud", raising=False)
    monkeypatch.setattr(pool_types, "_REGISTRY", {})
    monkeypatch.setattr(pool_types, "_builtins_loaded", False)
    monkeypatch.setattr(registry, "_specs", None)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    monkeypatch.setenv("TOY_CLOUD", str(cloud))
    return cloud


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "push_pools.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def defaults(pool: dict[str, Any]) -> dict[str, Any]:
    properties = pool["base_job_template"]["variables"]["properties"]
    return {k: v.get("default") for k, v in properties.items()}


def test_help_lists_each_flag_with_the_pool_types_it_applies_to(toy_cloud: Path) -> None:
    result = cli("work-pool", "create", "--help")
    assert result.returncode == 0, result.stderr
    # Help text is wrapped (even inside "cloud-run:push"): compare without any whitespace.
    flat = "".join(result.stdout.split())
    assert "--zone<str>[toy:push]Toyzone" in flat
    assert "--profile<str>[ecs:push]AWSprofile" in flat
    # One flag, three clouds: each type's meaning.
    assert "--region<str>[cloud-run:push,ecs:push,toy:push]cloud-run:push:GoogleCloud" in flat
    assert "|ecs:push:AWSregion" in flat
    assert "|toy:push:Toyregion(unused)." in flat
    assert "toy:push:amachinefile" in flat


def test_a_plugged_in_cloud_provisions_and_tears_down(server, client, toy_cloud: Path) -> None:
    made = cli(
        "work-pool", "create", "toys", "--type", "toy:push", "--provision-infra",
        "--zone", "z7", "--yes", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    pool = json.loads(made.stdout)
    assert defaults(pool) == {"zone": "z7", "credentials": "toys-toy-key"}
    assert (toy_cloud / "toys-z7").read_text() == "up"
    assert client.get_block("toys-toy-key")["block_type"] == "secret"

    # The zone comes from the records: deprovision-infra has no --zone.
    removed = cli("work-pool", "deprovision-infra", "toys", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert list(toy_cloud.iterdir()) == []
    assert client.list_infrastructure("toys") == []
    assert "--zone" not in cli("work-pool", "deprovision-infra", "--help").stdout


def test_a_flag_of_another_type_is_one_line_error(server, client, toy_cloud: Path) -> None:
    wrong = cli(
        "work-pool", "create", "toys", "--type", "toy:push", "--provision-infra",
        "--profile", "dev", "--yes",
    )  # fmt: skip
    assert wrong.returncode == 1
    last_line = wrong.stderr.strip().splitlines()[-1]
    assert last_line == "Error: --profile applies to ecs:push pools, not 'toy:push'"
    without = cli("work-pool", "create", "toys", "--type", "toy:push", "--zone", "z7")
    assert without.returncode == 1
    assert without.stderr.strip().splitlines()[-1] == (
        "Error: --zone is an option of --provision-infra; add --provision-infra"
    )
    assert list(toy_cloud.iterdir()) == []
    assert client.list_work_pools() == []
