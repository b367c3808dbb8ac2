"""`push-pools deploy` and `push-pools deployment ...` against a live server."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.store


@pytest.fixture
def project(server, cli, flow_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A live server with a process pool named `pool`, and the flow directory as cwd."""
    created = cli("work-pool", "create", "pool", "--type", "process")
    assert created.exit_code == 0, created.stderr
    monkeypatch.chdir(flow_dir)
    return flow_dir


def deployments(cli) -> dict[str, dict]:
    listed = cli("deployment", "ls", "--json")
    assert listed.exit_code == 0, listed.stderr
    return {d["full_name"]: d for d in listed.json()}


def assert_clean_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


NIGHTLY = ("flows.py:greet", "-n", "nightly", "-p", "pool")


# --- deploying from the command line -------------------------------------------------------------


def test_deploy_creates_then_updates(project: Path, cli) -> None:
    result = cli(
        "deploy",
        *NIGHTLY,
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--no-prompt",
    )
    assert result.exit_code == 0, result.stderr
    assert "greet/nightly" in result.stdout and "created" in result.stdout
    # When it will run: the next three fire times, 02:00 in Berlin.
    assert "next runs:" in result.stdout

    inspected = cli("deployment", "inspect", "greet/nightly", "--json")
    assert inspected.exit_code == 0, inspected.stderr
    deployment = inspected.json()
    assert deployment["full_name"] == "greet/nightly"
    assert deployment["flow_name"] == "greet"
    assert deployment["work_pool_name"] == "pool"
    assert deployment["work_queue_name"] == "default"
    assert deployment["entrypoint"] == "flows.py:greet"
    assert len(deployment["schedules"]) == 1
    schedule = deployment["schedules"][0]
    assert schedule["cron"] == "0 2 * * *"
    assert schedule["timezone"] == "Europe/Berlin"
    assert schedule["active"] is True
    schema = deployment["parameter_schema"]
    assert schema["properties"]["name"]["type"] == "string"
    assert schema["properties"]["name"]["default"] == "world"
    assert schema["properties"]["times"]["type"] == "integer"
    assert not schema.get("required")
    # Every field the README promises for a deployment is there.
    for key in (
        "id name flow_name full_name description work_pool_name work_queue_name entrypoint path "
        "pull_steps parameters parameter_schema job_variables schedules tags paused status "
        "created updated"
    ).split():
        assert key in deployment, key
    for key in "id cron interval_seconds timezone anchor_date active description".split():
        assert key in schedule, key
    berlin = ZoneInfo("Europe/Berlin")
    upcoming = [datetime.fromisoformat(t).astimezone(berlin) for t in deployment["next_runs"]]
    assert len(upcoming) == 3 and upcoming == sorted(upcoming)
    assert {(t.hour, t.minute) for t in upcoming} == {(2, 0)}
    assert upcoming[0] > datetime.now(UTC)
    shown = cli("deployment", "inspect", "greet/nightly")
    assert "next_runs" in shown.stdout and " (in " in shown.stdout
    assert cli("deployment", "pause", "greet/nightly").exit_code == 0
    assert deployments(cli)["greet/nightly"]["next_runs"] == []  # paused: nothing will run
    assert cli("deployment", "resume", "greet/nightly").exit_code == 0

    again = cli("deploy", *NIGHTLY, "--cron", "30 4 * * 1", "--no-prompt")
    assert again.exit_code == 0, again.stderr
    assert "updated" in again.stdout

    listed = deployments(cli)
    assert list(listed) == ["greet/nightly"]
    updated = listed["greet/nightly"]
    assert updated["id"] == deployment["id"]  # the same deployment, not a new one
    assert [s["cron"] for s in updated["schedules"]] == ["30 4 * * 1"]


def test_deploy_json_output_is_the_deployment(project: Path, cli) -> None:
    result = cli("deploy", *NIGHTLY, "--param", "name=Ada", "--tag", "etl", "--no-prompt", "--json")
    assert result.exit_code == 0, result.stderr
    [deployment] = result.json()
    assert deployment["full_name"] == "greet/nightly"
    assert deployment["parameters"] == {"name": "Ada"}
    assert deployment["tags"] == ["etl"]
    assert deployment["schedules"] == []


def test_one_flow_two_deployments(project: Path, cli) -> None:
    first = cli("deploy", "flows.py:greet", "-n", "morning", "-p", "pool", "--no-prompt")
    second = cli(
        "deploy", "flows.py:greet", "-n", "evening", "-p", "pool", "--interval", "3600",
        "--no-prompt",
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert second.exit_code == 0, second.stderr
    listed = deployments(cli)
    assert set(listed) == {"greet/morning", "greet/evening"}
    assert listed["greet/morning"]["id"] != listed["greet/evening"]["id"]
    assert listed["greet/morning"]["schedules"] == []
    assert listed["greet/evening"]["schedules"][0]["interval_seconds"] == 3600


def test_deployment_pause_resume_delete(project: Path, cli) -> None:
    assert cli("deploy", *NIGHTLY, "--cron", "0 2 * * *", "--no-prompt").exit_code == 0

    paused = cli("deployment", "pause", "greet/nightly")
    assert paused.exit_code == 0, paused.stderr
    assert cli("deployment", "inspect", "greet/nightly", "--json").json()["paused"] is True

    resumed = cli("deployment", "resume", "greet/nightly")
    assert resumed.exit_code == 0, resumed.stderr
    assert cli("deployment", "inspect", "greet/nightly", "--json").json()["paused"] is False

    deleted = cli("deployment", "delete", "greet/nightly", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert deployments(cli) == {}
    assert_clean_error(cli("deployment", "inspect", "greet/nightly"), "not found")


def test_deployment_not_found(server, cli) -> None:
    for command in ("inspect", "pause", "resume", "delete", "run"):
        assert_clean_error(cli("deployment", command, "nope/nope"), "'nope/nope' not found")


# --- push-pools.yaml -----------------------------------------------------------------------------


def write_project_file(directory: Path) -> Path:
    path = directory / "push-pools.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: greetings
            pull:
              - set_working_directory:
                  directory: {directory}
            deployments:
              - name: one
                entrypoint: flows.py:greet
                work_pool: {{name: pool}}
                parameters: {{name: One}}
                tags: [first]
              - name: two
                entrypoint: flows.py:greet
                work_pool:
                  name: pool
                  job_variables: {{env: {{GREETING: hi}}}}
                parameters: {{name: Two, times: 2}}
                schedules:
                  - cron: "15 3 * * *"
                    timezone: Europe/Paris
            """
        )
    )
    return path


def test_project_file_deploy_all(project: Path, cli, worker_factory) -> None:
    write_project_file(project)
    result = cli("deploy", "--all", "--no-prompt")
    assert result.exit_code == 0, result.stderr
    listed = deployments(cli)
    assert set(listed) == {"greet/one", "greet/two"}

    one, two = listed["greet/one"], listed["greet/two"]
    assert one["parameters"] == {"name": "One"}
    assert one["tags"] == ["first"]
    assert one["schedules"] == []
    assert two["parameters"] == {"name": "Two", "times": 2}
    assert two["job_variables"] == {"env": {"GREETING": "hi"}}
    assert [(s["cron"], s["timezone"]) for s in two["schedules"]] == [
        ("15 3 * * *", "Europe/Paris")
    ]
    # The file's pull step is what runs start with.
    for deployment in (one, two):
        [step] = deployment["pull_steps"]
        [(name, options)] = step.items()
        assert name.endswith("set_working_directory")
        assert options == {"directory": str(project)}

    # ...and a run of it really finds the code there.
    worker_factory("pool")
    run = cli("deployment", "run", "greet/one", "--watch", "--watch-timeout", "45")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "hello One" in run.stdout
    assert "COMPLETED" in run.stdout


def test_project_file_deploy_one_by_name(project: Path, cli) -> None:
    write_project_file(project)
    result = cli("deploy", "-n", "one", "--no-prompt")
    assert result.exit_code == 0, result.stderr
    assert set(deployments(cli)) == {"greet/one"}


def test_project_file_unknown_name(project: Path, cli) -> None:
    write_project_file(project)
    result = cli("deploy", "-n", "three", "--no-prompt")
    assert_clean_error(result, "three", "one, two")
    assert deployments(cli) == {}


def test_project_file_several_entries_need_a_choice(project: Path, cli) -> None:
    write_project_file(project)
    result = cli("deploy", "--no-prompt")
    assert_clean_error(result, "--all")
    assert deployments(cli) == {}


def test_project_file_yaml_syntax_error(project: Path, cli) -> None:
    (project / "push-pools.yaml").write_text(
        "deployments:\n"
        "  - name: one\n"
        "    entrypoint: flows.py:greet\n"
        "    work_pool: {name: pool\n"
        "    tags: [a, b]\n"
    )
    result = cli("deploy", "--all", "--no-prompt")
    assert_clean_error(result, "push-pools.yaml", "invalid YAML", "line 5")
    assert deployments(cli) == {}


def test_project_file_unknown_key(project: Path, cli) -> None:
    (project / "push-pools.yaml").write_text(
        "deployments:\n"
        "  - name: one\n"
        "    entrypoint: flows.py:greet\n"
        "    work_pool: {name: pool}\n"
        "    shedules: [{cron: '0 1 * * *'}]\n"
    )
    result = cli("deploy", "--all", "--no-prompt")
    assert_clean_error(result, "push-pools.yaml", "shedules", "unknown field", "schedules")
    assert deployments(cli) == {}


def test_project_file_with_one_invalid_entry_deploys_none(project: Path, cli) -> None:
    (project / "push-pools.yaml").write_text(
        "deployments:\n"
        "  - name: one\n"
        "    entrypoint: flows.py:greet\n"
        "    work_pool: {name: pool}\n"
        "  - name: two\n"
        "    entrypoint: flows.py:greet\n"
        "    work_pool: {name: pool}\n"
        "    schedules: [{cron: '61 * * * *'}]\n"
    )
    result = cli("deploy", "--all", "--no-prompt")
    assert_clean_error(result, "61 * * * *")
    assert deployments(cli) == {}


# --- bad input: one clear line, non-zero exit, nothing created -----------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(
            ("missing.py:greet", "-n", "x", "-p", "pool"),
            ("missing.py", "does not exist"),
            id="file-missing",
        ),
        pytest.param(
            ("flows.py:nothere", "-n", "x", "-p", "pool"),
            ("'nothere'", "flows.py:greet"),
            id="function-missing",
        ),
        pytest.param(
            ("flows.py:not_a_flow", "-n", "x", "-p", "pool"),
            ("not_a_flow", "not a flow"),
            id="not-a-flow",
        ),
        pytest.param(
            ("flows.py:greet", "-n", "x", "-p", "pool", "--cron", "61 * * * *"),
            ("61 * * * *", "minute"),
            id="bad-cron",
        ),
        pytest.param(
            (
                "flows.py:greet",
                "-n",
                "x",
                "-p",
                "pool",
                "--cron",
                "0 2 * * *",
                "--timezone",
                "Mars/Olympus",
            ),
            ("Mars/Olympus", "timezone"),
            id="bad-timezone",
        ),  # fmt: skip
        pytest.param(
            ("flows.py:greet", "-n", "x", "-p", "nopool"),
            ("work pool 'nopool' not found",),
            id="pool-not-found",
        ),
        pytest.param(
            ("flows.py:greet", "-n", "x", "-p", "pool", "--job-variable", "stream_output=notabool"),
            ("stream_output", "boolean"),
            id="bad-job-variable",
        ),
        pytest.param(
            ("flows.py:greet", "-n", "x", "-p", "pool", "--param", "times=abc"),
            ("times", "integer"),
            id="bad-param-type",
        ),
        pytest.param(
            ("flows.py:greet", "-n", "x", "-p", "pool", "--param", "colour=red"),
            ("colour",),
            id="unknown-param",
        ),
        pytest.param(
            ("flows.py:greet", "-p", "pool"),
            ("--name",),
            id="missing-name",
        ),
        pytest.param(
            ("flows.py:greet", "-n", "x"),
            ("--pool",),
            id="missing-pool",
        ),
        pytest.param(
            ("-n", "x", "-p", "pool"),
            ("ENTRYPOINT",),
            id="missing-entrypoint",
        ),
        pytest.param(
            ("flows.py:greet", "-n", "x", "-p", "pool", "--cron", "0 1 * * *", "--interval", "60"),
            ("--cron", "--interval"),
            id="cron-and-interval",
        ),  # fmt: skip
    ],
)
def test_bad_deploy_input(project: Path, cli, args: tuple[str, ...], needles) -> None:
    result = cli("deploy", *args, "--no-prompt")
    assert_clean_error(result, *needles)
    assert "Error" in result.stderr
    assert deployments(cli) == {}


def test_invalid_input_leaves_an_existing_deployment_alone(project: Path, cli) -> None:
    assert cli("deploy", *NIGHTLY, "--cron", "0 2 * * *", "--no-prompt").exit_code == 0
    result = cli("deploy", *NIGHTLY, "--cron", "61 * * * *", "--no-prompt")
    assert_clean_error(result, "61 * * * *")
    [deployment] = deployments(cli).values()
    assert [s["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]


# --- running -------------------------------------------------------------------------------------


def test_run_watch_exits_non_zero_when_the_run_fails(project: Path, cli, worker_factory) -> None:
    assert cli("deploy", "flows.py:boom", "-n", "x", "-p", "pool", "--no-prompt").exit_code == 0
    worker_factory("pool")

    failed = cli("deployment", "run", "boom/x", "--watch", "--watch-timeout", "45")
    assert "FAILED" in failed.stdout
    assert "kaboom" in failed.stdout
    assert "Traceback" not in failed.stderr
    assert failed.exit_code != 0  # README: "--watch waits and exits non-zero unless Completed"


def test_run_watch_exits_zero_when_the_run_completes(project: Path, cli, worker_factory) -> None:
    assert cli("deploy", *NIGHTLY, "--no-prompt").exit_code == 0
    worker_factory("pool")

    ok = cli(
        "deployment", "run", "greet/nightly", "--param", "name=Ada", "--watch",
        "--watch-timeout", "45",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "hello Ada" in ok.stdout
    assert "COMPLETED" in ok.stdout
    [run] = cli("flow-run", "ls", "--deployment", "greet/nightly", "--json").json()
    assert run["state"] == "COMPLETED"
    assert run["parameters"] == {"name": "Ada"}


def test_run_reads_params_by_the_flows_types(project: Path, cli) -> None:
    """`--param name=123` is the text "123" for a str parameter, a number for an int one."""
    assert cli("deploy", *NIGHTLY, "--no-prompt").exit_code == 0
    result = cli(
        "deployment", "run", "greet/nightly", "--param", "name=123", "--param", "times=2",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.json()["parameters"] == {"name": "123", "times": 2}


def test_run_refuses_a_bad_parameter_before_creating_a_run(project: Path, cli) -> None:
    assert cli("deploy", *NIGHTLY, "--no-prompt").exit_code == 0
    result = cli("deployment", "run", "greet/nightly", "--param", "times=abc")
    assert_clean_error(result, "times")
    runs = cli("flow-run", "ls", "--json")
    assert runs.exit_code == 0, runs.stderr
    assert runs.json() == []
