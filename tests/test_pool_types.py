"""Pool types are found through the `push_pools.pool_types` entry-point group, ours and a
separately installed package's alike."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from push_pools import pool_types
from push_pools.errors import InvalidInput

PLUGIN = """
from push_pools.pool_types import PoolType

def _template():
    return {"job_configuration": {"command": "{{ command }}"},
            "variables": {"type": "object", "properties": {"command": {"type": "string"}}}}

POOL_TYPE = PoolType(
    name="acme:push",
    description="Runs flows on ACME's cloud.",
    default_template=_template,
    executor="acme_pool:Executor",
    is_push=True,
    max_run_variable=None,
)
"""


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_types, "_REGISTRY", {})
    monkeypatch.setattr(pool_types, "_builtins_loaded", False)


def _install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    (root / "acme_pool.py").write_text(PLUGIN)
    info = root / "acme_pool-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pool\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[push_pools.pool_types]\nacme = {value}\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "acme_pool", raising=False)


def test_an_installed_package_adds_a_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    _install_plugin(tmp_path, monkeypatch, "acme_pool:POOL_TYPE")
    assert pool_types.names() == [
        "acme:push",
        "azure-container-instance:push",
        "cloud-run:push",
        "docker",
        "ecs:push",
        "managed",
        "process",
    ]
    acme = pool_types.get("acme:push")
    assert acme.is_push and acme.max_run_variable is None
    assert acme.default_template()["job_configuration"] == {"command": "{{ command }}"}


def test_an_entry_point_that_is_not_a_pool_type_is_left_out_saying_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_registry: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _install_plugin(tmp_path, monkeypatch, "acme_pool:_template")
    assert pool_types.names() == [
        "azure-container-instance:push",
        "cloud-run:push",
        "docker",
        "ecs:push",
        "managed",
        "process",
    ]
    assert "'acme' is left out" in caplog.text
    assert "must name a push_pools.pool_types.PoolType" in caplog.text
    with pytest.raises(InvalidInput, match="unknown work pool type 'acme:push'"):
        pool_types.get("acme:push")


def test_the_built_in_types_name_their_dispatcher_variables() -> None:
    ecs = pool_types.get("ecs:push")
    assert ecs.start_timeout_variable == "task_start_timeout_seconds"  # Prefect's name
    assert ecs.credential_slots == ("aws_credentials",)
    managed = pool_types.get("managed")
    assert managed.start_timeout_variable == "start_timeout_seconds"
    assert managed.keep_infrastructure_variable == "keep_infrastructure"
