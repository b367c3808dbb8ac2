"""Work pools and queues through the CLI against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.store


def test_create_ls_inspect_pool(server, cli) -> None:
    created = cli("work-pool", "create", "my-pool", "--type", "process", "--json")
    assert created.exit_code == 0, created.stderr
    assert created.json()["name"] == "my-pool"

    listed = cli("work-pool", "ls", "--json")
    pools = {p["name"]: p for p in listed.json()}
    assert pools["my-pool"]["type"] == "process"
    assert pools["my-pool"]["status"] == "NOT_READY"  # no worker has polled yet
    assert [q["name"] for q in pools["my-pool"]["queues"]] == ["default"]

    inspected = cli("work-pool", "inspect", "my-pool", "--json").json()
    assert "command" in inspected["base_job_template"]["job_configuration"]

    human = cli("work-pool", "ls")
    assert "my-pool" in human.stdout and "NOT_READY" in human.stdout


def test_pause_resume_and_concurrency_limit(server, cli) -> None:
    cli("work-pool", "create", "p", "--type", "process", "--concurrency-limit", "3")
    assert cli("work-pool", "inspect", "p", "--json").json()["concurrency_limit"] == 3
    assert cli("work-pool", "pause", "p").exit_code == 0
    assert cli("work-pool", "inspect", "p", "--json").json()["status"] == "PAUSED"
    cli("work-pool", "resume", "p")
    assert cli("work-pool", "inspect", "p", "--json").json()["status"] == "NOT_READY"
    cli("work-pool", "set-concurrency-limit", "p", "7")
    assert cli("work-pool", "inspect", "p", "--json").json()["concurrency_limit"] == 7
    cli("work-pool", "clear-concurrency-limit", "p")
    assert cli("work-pool", "inspect", "p", "--json").json()["concurrency_limit"] is None


def test_pool_becomes_ready_when_a_worker_polls(server, cli, worker_factory) -> None:
    cli("work-pool", "create", "pool", "--type", "process")
    worker_factory("pool")
    import time

    deadline = time.monotonic() + 10
    while cli("work-pool", "inspect", "pool", "--json").json()["status"] != "READY":
        assert time.monotonic() < deadline, "pool never became READY"
        time.sleep(0.1)


def test_custom_base_job_template(server, cli, tmp_path: Path) -> None:
    default = cli("work-pool", "get-default-base-job-template", "--type", "process")
    template = json.loads(default.stdout)
    template["variables"]["properties"]["env"]["default"] = {"TEAM": "data"}
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    result = cli(
        "work-pool", "create", "custom", "--type", "process", "--base-job-template", str(path)
    )
    assert result.exit_code == 0, result.stderr
    stored = cli("work-pool", "inspect", "custom", "--json").json()["base_job_template"]
    assert stored["variables"]["properties"]["env"]["default"] == {"TEAM": "data"}


def test_delete_pool(server, cli) -> None:
    cli("work-pool", "create", "gone", "--type", "process")
    assert cli("work-pool", "delete", "gone", "--yes").exit_code == 0
    assert "gone" not in [p["name"] for p in cli("work-pool", "ls", "--json").json()]


def test_queues(server, cli) -> None:
    cli("work-pool", "create", "p", "--type", "process")
    made = cli(
        "work-queue",
        "create",
        "urgent",
        "--pool",
        "p",
        "--priority",
        "1",
        "--concurrency-limit",
        "2",
        "--json",
    )
    assert made.exit_code == 0, made.stderr
    cli("work-queue", "update", "default", "--pool", "p", "--priority", "5")
    names = [q["name"] for q in cli("work-queue", "ls", "--pool", "p", "--json").json()]
    assert names == ["urgent", "default"]  # priority order
    assert cli("work-queue", "pause", "urgent", "--pool", "p").exit_code == 0
    assert cli("work-queue", "inspect", "urgent", "--pool", "p", "--json").json()["paused"]
    cli("work-queue", "resume", "urgent", "--pool", "p")
    assert cli("work-queue", "delete", "urgent", "--pool", "p").exit_code == 0
    names = [q["name"] for q in cli("work-queue", "ls", "--pool", "p", "--json").json()]
    assert names == ["default"]


# --- bad input: a clear error, non-zero exit, no traceback, nothing changed --------------------


def assert_clean_error(result, *needles: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_unknown_pool_type(server, cli) -> None:
    result = cli("work-pool", "create", "x", "--type", "kubernetes-ish")
    assert_clean_error(result, "unknown work pool type 'kubernetes-ish'", "process")
    assert cli("work-pool", "ls", "--json").json() == []


def test_a_pool_name_with_a_space_is_refused_in_words(server, cli) -> None:
    result = cli("work-pool", "create", "my pool", "--type", "process")
    assert_clean_error(result, "'my pool' is not allowed", "no spaces")
    assert "^[" not in result.stderr  # no raw regular expression
    assert cli("work-pool", "ls", "--json").json() == []


def test_with_json_every_error_is_a_json_object_on_stdout(server, cli) -> None:
    import json

    cases = {
        ("work-pool", "create", "x", "--type", "nope", "--json"): "invalid_input",
        ("work-pool", "inspect", "nope", "--json"): "not_found",
        (
            "work-pool",
            "create",
            "x",
            "-t",
            "process",
            "--concurrency-limit",
            "z",
            "--json",
        ): "usage",
    }
    for args, code in cases.items():
        result = cli(*args)
        assert result.exit_code != 0
        answer = json.loads(result.stdout)
        assert answer["code"] == code, answer
        assert answer["error"]
    assert cli("work-pool", "ls", "--json").json() == []


def test_duplicate_pool_name(server, cli) -> None:
    cli("work-pool", "create", "dup", "--type", "process", "--concurrency-limit", "1")
    result = cli("work-pool", "create", "dup", "--type", "process")
    assert_clean_error(result, "already exists")
    assert cli("work-pool", "inspect", "dup", "--json").json()["concurrency_limit"] == 1


def test_pool_and_queue_not_found(server, cli) -> None:
    assert_clean_error(cli("work-pool", "inspect", "nope"), "work pool 'nope' not found")
    cli("work-pool", "create", "p", "--type", "process")
    assert_clean_error(
        cli("work-queue", "inspect", "nope", "--pool", "p"), "work queue 'nope' not found"
    )


def test_malformed_template_json(server, cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"job_configuration": {"command": "{{ command }}",}')
    result = cli("work-pool", "create", "x", "--type", "process", "--base-job-template", str(path))
    assert_clean_error(result, "not valid JSON", "line 1")
    assert cli("work-pool", "ls", "--json").json() == []


def test_template_with_undeclared_placeholder(server, cli, tmp_path: Path) -> None:
    template = {
        "job_configuration": {"command": "{{ command }}", "image": "{{ image }}"},
        "variables": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    result = cli("work-pool", "create", "x", "--type", "process", "--base-job-template", str(path))
    assert_clean_error(result, "image")
    assert cli("work-pool", "ls", "--json").json() == []


def test_unreachable_server_names_the_url(cli, monkeypatch) -> None:
    monkeypatch.setenv("PUSH_POOLS_API_URL", "http://127.0.0.1:9/api")
    result = cli("work-pool", "ls")
    assert_clean_error(result, "http://127.0.0.1:9/api", "push-pools server start")


def test_wrong_or_missing_api_key(server_factory, cli, monkeypatch) -> None:
    server_factory(api_key="s3cret")
    assert_clean_error(cli("work-pool", "ls"), "API key")
    monkeypatch.setenv("PUSH_POOLS_API_KEY", "wrong")
    assert_clean_error(cli("work-pool", "ls"), "API key")
    monkeypatch.setenv("PUSH_POOLS_API_KEY", "s3cret")
    assert cli("work-pool", "ls", "--json").exit_code == 0


def test_api_rejects_requests_without_key_with_401(server_factory) -> None:
    import httpx

    server = server_factory(api_key="s3cret")
    for path in ("/health", "/work_pools", "/deployments", "/openapi.json"):
        assert httpx.get(server.api_url + path).status_code == 401
    ok = httpx.get(server.api_url + "/work_pools", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
