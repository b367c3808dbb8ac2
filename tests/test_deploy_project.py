"""Deploying without a server: entrypoints, flow discovery, steps, the project file, and bodies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from push_pools.deploy.entrypoints import find_flows, load_flow
from push_pools.deploy.project import load_project, save_deployment
from push_pools.deploy.sdk import build_deployment, from_source
from push_pools.deploy.steps import PREFIX, execute_steps, parse_steps, run_steps
from push_pools.errors import InvalidInput

FLOW_FILE = """
from push_pools.flows import flow


@flow
def etl(day: str, limit: int = 10) -> int:
    return limit


@flow(name="cleanup-job")
def cleanup() -> None:
    pass


def helper() -> None:
    pass


VALUE = 3
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "flows" / "etl.py", FLOW_FILE)
    return tmp_path


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        # The machine's git config (signing, hooks, default branch) must not change the test.
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        monkeypatch.setenv(key, value)


def make_repo(path: Path, files: dict[str, str]) -> str:
    """A git repository with one commit holding `files`; returns the commit id."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name, text in files.items():
        write(path / name, text)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "initial"], check=True)
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


# --- load_flow ---------------------------------------------------------------------------------


def test_load_flow_relative_to_base_dir(project: Path) -> None:
    flow = load_flow("flows/etl.py:etl", project)
    assert flow.name == "etl"
    assert flow(day="mon") == 10
    assert load_flow("flows/etl.py:cleanup", project).name == "cleanup-job"


def test_load_flow_relative_to_cwd(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "flows")
    assert load_flow("etl.py:etl").name == "etl"


def test_load_flow_sibling_import(tmp_path: Path) -> None:
    write(tmp_path / "pkg_helpers_x1.py", "FACTOR = 7\n")
    write(
        tmp_path / "main.py",
        """
        from pkg_helpers_x1 import FACTOR
        from push_pools.flows import flow

        @flow
        def scaled(x: int = 1) -> int:
            return x * FACTOR
        """,
    )
    assert load_flow("main.py:scaled", tmp_path)(x=2) == 14


def test_load_flow_two_files_with_same_name_stay_apart(tmp_path: Path) -> None:
    for folder, name in (("a", "first"), ("b", "second")):
        write(
            tmp_path / folder / "flows.py",
            f"from push_pools.flows import flow\n\n@flow(name='{name}')\ndef main() -> None:\n"
            "    pass\n",
        )
    assert load_flow("a/flows.py:main", tmp_path).name == "first"
    assert load_flow("b/flows.py:main", tmp_path).name == "second"


def test_load_flow_without_colon(project: Path) -> None:
    with pytest.raises(InvalidInput, match="must look like 'path/to/file.py:function_name'"):
        load_flow("flows/etl.py", project)


def test_load_flow_missing_file_names_absolute_path(project: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        load_flow("flows/nope.py:etl", project)
    assert str((project / "flows" / "nope.py").resolve()) in exc.value.message
    assert "does not exist" in exc.value.message


def test_load_flow_missing_function_lists_flows(project: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        load_flow("flows/etl.py:etll", project)
    message = exc.value.message
    assert "no 'etll'" in message
    assert "etl.py:etl" in message and "etl.py:cleanup" in message
    assert "helper" not in message  # plain functions are not offered as flows


def test_load_flow_missing_function_in_file_without_flows(tmp_path: Path) -> None:
    write(tmp_path / "plain.py", "def main() -> None:\n    pass\n")
    with pytest.raises(InvalidInput, match="defines no @flow functions"):
        load_flow("plain.py:other", tmp_path)


def test_load_flow_not_a_flow(project: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        load_flow("flows/etl.py:helper", project)
    assert exc.value.message == (
        "'helper' in etl.py is a function, not a flow: decorate it with @flow from push_pools"
    )
    with pytest.raises(InvalidInput, match="'VALUE' in etl.py is a int, not a flow"):
        load_flow("flows/etl.py:VALUE", project)


def test_load_flow_import_error_has_type_and_message(tmp_path: Path) -> None:
    write(
        tmp_path / "broken.py",
        """
        from push_pools.flows import flow

        raise RuntimeError("database URL not set")
        """,
    )
    with pytest.raises(InvalidInput) as exc:
        load_flow("broken.py:main", tmp_path)
    message = exc.value.message
    assert "RuntimeError: database URL not set" in message
    assert "line 4 of broken.py" in message
    assert "Traceback" not in message


def test_load_flow_missing_module_and_syntax_error(tmp_path: Path) -> None:
    write(tmp_path / "needs.py", "import no_such_module_for_push_pools\n")
    with pytest.raises(InvalidInput, match="ModuleNotFoundError: No module named"):
        load_flow("needs.py:main", tmp_path)
    write(tmp_path / "bad.py", "def main(:\n")
    with pytest.raises(InvalidInput, match="SyntaxError"):
        load_flow("bad.py:main", tmp_path)


def test_load_flow_sys_exit_does_not_end_the_caller(tmp_path: Path) -> None:
    write(tmp_path / "script.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(InvalidInput, match="SystemExit: 3"):
        load_flow("script.py:main", tmp_path)


# --- find_flows --------------------------------------------------------------------------------


def test_find_flows(project: Path) -> None:
    write(
        project / "other" / "jobs.py",
        """
        import push_pools.flows as pf
        from push_pools.flows import flow as task_flow

        @pf.flow(retries=2)
        def a() -> None: ...

        @task_flow
        async def b() -> None: ...

        def not_a_flow() -> None: ...
        """,
    )
    write(project / "prefect_flows.py", "from prefect import flow\n\n@flow\ndef p() -> None: ...\n")
    write(project / "own.py", "def flow(f):\n    return f\n\n@flow\ndef mine() -> None: ...\n")
    write(project / "broken.py", "def (:\n")
    write(project / ".venv" / "lib" / "x.py", FLOW_FILE)
    write(project / "env2" / "pyvenv.cfg", "home = /usr\n")
    write(project / "env2" / "lib" / "y.py", FLOW_FILE)
    write(project / ".hidden" / "z.py", FLOW_FILE)
    write(project / "lib" / "site-packages" / "w.py", FLOW_FILE)

    assert find_flows(project) == [
        "flows/etl.py:etl",
        "flows/etl.py:cleanup",
        "other/jobs.py:a",
        "other/jobs.py:b",
    ]


# --- steps -------------------------------------------------------------------------------------


def test_set_working_directory(tmp_path: Path) -> None:
    (tmp_path / "code" / "inner").mkdir(parents=True)
    steps = [
        {PREFIX + "set_working_directory": {"directory": str(tmp_path / "code")}},
        {"set_working_directory": {"directory": "inner"}},  # relative to the previous one
    ]
    assert run_steps(steps, tmp_path) == (tmp_path / "code" / "inner").resolve()
    with pytest.raises(InvalidInput, match="does not exist"):
        run_steps([{"set_working_directory": {"directory": "missing"}}], tmp_path)


def test_git_clone_local_repository(tmp_path: Path, git_env: None) -> None:
    commit = make_repo(tmp_path / "origin" / "myrepo.git", {"flows/etl.py": FLOW_FILE})
    work = tmp_path / "work"
    work.mkdir()
    steps = [
        {
            PREFIX + "git_clone": {
                "id": "clone",
                "repository": f"file://{tmp_path}/origin/myrepo.git",
            }
        },
        {"run_shell_script": {"script": "test -f flows/etl.py && echo found", "id": "check"}},
    ]
    result = execute_steps(steps, work)
    assert result.directory == (work / "myrepo").resolve()
    assert result.outputs["clone"] == {"directory": str(result.directory), "commit": commit}
    assert result.outputs["check"]["stdout"] == "found"
    assert load_flow("flows/etl.py:etl", result.directory).name == "etl"

    # A second run in the same place updates the clone instead of failing on the directory.
    origin = tmp_path / "origin" / "myrepo.git"
    write(origin / "NEW.txt", "new\n")
    subprocess.run(["git", "-C", str(origin), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(origin), "commit", "-q", "-m", "second"], check=True)
    assert (run_steps(steps, work) / "NEW.txt").read_text() == "new\n"


def test_git_clone_branch_commit_and_step_outputs(tmp_path: Path, git_env: None) -> None:
    origin = tmp_path / "repo"
    first = make_repo(origin, {"version.txt": "1\n"})
    subprocess.run(["git", "-C", str(origin), "checkout", "-q", "-b", "dev"], check=True)
    write(origin / "version.txt", "dev\n")
    subprocess.run(["git", "-C", str(origin), "commit", "-q", "-am", "dev"], check=True)
    subprocess.run(["git", "-C", str(origin), "checkout", "-q", "main"], check=True)

    on_branch = run_steps(
        [{"git_clone": {"repository": str(origin), "branch": "dev", "directory": "b"}}], tmp_path
    )
    assert (on_branch / "version.txt").read_text() == "dev\n"

    at_commit = run_steps(
        [{"git_clone": {"repository": f"file://{origin}", "commit": first, "directory": "c"}}],
        tmp_path,
    )
    assert (at_commit / "version.txt").read_text() == "1\n"

    # `{{ id.key }}` hands one step's output to a later one.
    result = execute_steps(
        [
            {"git_clone": {"id": "src", "repository": str(origin), "directory": "d"}},
            {"set_working_directory": {"directory": str(tmp_path)}},
            {"set_working_directory": {"directory": "{{ src.directory }}"}},
        ],
        tmp_path,
    )
    assert result.directory == (tmp_path / "d").resolve()


def test_git_clone_failure_message(tmp_path: Path, git_env: None) -> None:
    missing = tmp_path / "no-such-repo"
    with pytest.raises(InvalidInput) as exc:
        run_steps([{"git_clone": {"repository": str(missing)}}], tmp_path)
    message = exc.value.message
    assert message.startswith(f"cannot clone {missing}: ")
    assert "does not exist" in message
    assert "\n" not in message  # git's last stderr line only


def test_git_clone_refuses_foreign_directory(tmp_path: Path, git_env: None) -> None:
    make_repo(tmp_path / "src" / "repo", {"a.txt": "a\n"})
    write(tmp_path / "work" / "repo" / "mine.txt", "keep me\n")
    with pytest.raises(InvalidInput, match="already exists and is not a clone of it"):
        step = {"git_clone": {"repository": str(tmp_path / "src" / "repo")}}
        run_steps([step], tmp_path / "work")
    assert (tmp_path / "work" / "repo" / "mine.txt").read_text() == "keep me\n"


def test_run_shell_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = execute_steps(
        [
            {
                "run_shell_script": {
                    "id": "s",
                    "script": "echo $GREETING-$(pwd)",
                    "env": {"GREETING": "hi"},
                }
            }
        ],
        tmp_path,
    )
    assert result.outputs["s"]["stdout"] == f"hi-{tmp_path.resolve()}"
    assert "hi-" in capsys.readouterr().out  # streamed while it ran


def test_run_shell_script_failure_has_output_tail(tmp_path: Path) -> None:
    script = "for i in $(seq 1 50); do echo line$i; done; echo 'boom: disk full' >&2; exit 4"
    with pytest.raises(InvalidInput) as exc:
        run_steps([{"run_shell_script": {"script": script, "stream_output": False}}], tmp_path)
    message = exc.value.message
    assert message.startswith("run_shell_script failed with exit code 4:")
    assert "boom: disk full" in message and "line50" in message
    assert "line1\n" not in message  # only the tail


def test_pip_install_requirements_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="requirements.txt does not exist"):
        run_steps([{"pip_install_requirements": None}], tmp_path)


def test_unknown_step_lists_known_steps(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        run_steps([{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "b"}}], tmp_path)
    message = exc.value.message
    assert "unknown step 'prefect_aws.deployments.steps.pull_from_s3'" in message
    for name in ("set_working_directory", "git_clone", "run_shell_script"):
        assert PREFIX + name in message
    assert PREFIX + "pip_install_requirements" in message


def test_bad_step_shapes_and_options(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="mapping with one key"):
        parse_steps([{"git_clone": {}, "set_working_directory": {}}])
    with pytest.raises(InvalidInput, match=r"unknown option\(s\) repo; it accepts: repository"):
        parse_steps([{"git_clone": {"repo": "x"}}], "pull")
    with pytest.raises(InvalidInput, match="missing option"):
        parse_steps([{"git_clone": {"branch": "main"}}], "pull")
    with pytest.raises(InvalidInput, match="no earlier step has id 'clone'"):
        parse_steps([{"set_working_directory": {"directory": "{{ clone.directory }}"}}], "pull")


def test_prefect_step_names_are_accepted(tmp_path: Path, git_env: None) -> None:
    make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    (tmp_path / "work").mkdir()
    steps = [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(tmp_path / "work")}},
        {"prefect.deployments.steps.git_clone": {"repository": str(tmp_path / "repo"), "id": "c"}},
        {"prefect.deployments.steps.run_shell_script": {"script": "cat a.txt", "id": "cat"}},
        {
            "prefect.projects.steps.git_clone_project": {
                "repository": str(tmp_path / "repo"),
                "directory": str(tmp_path / "again"),
            }
        },
    ]
    parsed = parse_steps(steps)
    assert [s.spec.name for s in parsed] == [
        "set_working_directory",
        "git_clone",
        "run_shell_script",
        "git_clone",
    ]
    result = execute_steps(steps, tmp_path)
    assert result.outputs["cat"]["stdout"] == "a"
    assert result.outputs["c"]["directory"] == str((tmp_path / "work" / "repo").resolve())
    assert result.directory == (tmp_path / "again").resolve()
    assert parse_steps([{"prefect.deployments.steps.pip_install_requirements": {}}])


# --- project file ------------------------------------------------------------------------------


def test_project_file_with_two_deployments_of_one_flow(project: Path) -> None:
    path = write(
        project / "push-pools.yaml",
        """
        name: analytics
        pull:
          - push_pools.deployments.steps.set_working_directory:
              directory: /srv/code
        deployments:
          - name: nightly
            entrypoint: flows/etl.py:etl
            parameters: {day: yesterday}
            work_pool:
              name: ecs-pool
              work_queue_name: high
              job_variables: {cpu: 1024, env: {A: "1"}}
            schedules:
              - cron: "0 3 * * *"
                timezone: Europe/Paris
            tags: [etl]
          - name: hourly
            entrypoint: flows/etl.py:etl
            parameters: {day: today, limit: 5}
            work_pool: {name: ecs-pool}
            schedules: [{interval: 3600, active: false}]
            paused: true
        """,
    )
    loaded = load_project(path)
    assert loaded.name == "analytics"
    assert loaded.directory == project.resolve()
    assert [d.name for d in loaded.deployments] == ["nightly", "hourly"]
    nightly, hourly = loaded.deployments
    assert nightly.work_pool is not None and nightly.work_pool.work_queue_name == "high"
    assert nightly.work_pool.job_variables == {"cpu": 1024, "env": {"A": "1"}}
    assert [s.to_api() for s in nightly.all_schedules()] == [
        {"active": True, "cron": "0 3 * * *", "timezone": "Europe/Paris"}
    ]
    assert hourly.paused is True
    assert hourly.all_schedules()[0].to_api() == {"active": False, "interval": 3600}
    assert loaded.pull == [
        {"push_pools.deployments.steps.set_working_directory": {"directory": "/srv/code"}}
    ]
    assert loaded.build is None

    # Both entries become deployments of the same flow, under their own names.
    flow = load_flow(nightly.entrypoint or "", loaded.directory)
    bodies = [
        build_deployment(
            flow,
            spec.name,
            "ecs-pool",
            parameters=spec.parameters,
            schedules=[s.to_api() for s in spec.all_schedules()],
            entrypoint=spec.entrypoint,
            source_dir=loaded.directory,
            pull_steps=loaded.pull,
        )
        for spec in loaded.deployments
    ]
    assert [(b["flow_name"], b["name"]) for b in bodies] == [("etl", "nightly"), ("etl", "hourly")]
    assert bodies[0]["parameter_schema"]["required"] == ["day"]


def test_prefect_yaml_keys_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prefect.yaml",
        """
        prefect-version: 2.14.0
        definitions:
          pool: &pool {name: my-pool}
        deployments:
          - name: d
            version: null
            entrypoint: f.py:f
            schedule: {}
            enforce_parameter_schema: true
            work_pool: *pool
          - name: e
            entrypoint: f.py:f
            schedule: {cron: "*/5 * * * *"}
            work_pool: *pool
        """,
    )
    loaded = load_project(path)
    assert loaded.deployments[0].all_schedules() == []
    assert loaded.deployments[0].work_pool is not None
    assert loaded.deployments[0].work_pool.name == "my-pool"
    assert loaded.deployments[1].all_schedules()[0].cron == "*/5 * * * *"


def test_project_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "push-pools.yaml",
        """\
        deployments:
          - name: a
            entrypoint: f.py:f
           work_pool: {name: p}
        """,
    )
    with pytest.raises(InvalidInput) as exc:
        load_project(path)
    assert exc.value.message.startswith("push-pools.yaml: invalid YAML at line 4, column")


def test_project_schema_error_names_field_path(tmp_path: Path) -> None:
    path = write(
        tmp_path / "push-pools.yaml",
        """
        deployments:
          - name: a
            entrypoint: f.py:f
            work_pool: {name: p}
          - name: b
            entrypoint: f.py:f
            work_pool: {work_queue_name: q}
        """,
    )
    with pytest.raises(InvalidInput) as exc:
        load_project(path)
    assert exc.value.message == "push-pools.yaml: deployments[1].work_pool.name: field required"


def test_project_unknown_key_lists_allowed_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path / "push-pools.yaml",
        "deployments:\n  - name: a\n    shedules: []\n",
    )
    with pytest.raises(InvalidInput) as exc:
        load_project(path)
    assert "deployments[0].shedules: unknown field (allowed: name, entrypoint" in exc.value.message
    assert "schedules" in exc.value.message


def test_project_schedule_needs_cron_or_interval(tmp_path: Path) -> None:
    path = write(
        tmp_path / "push-pools.yaml",
        "deployments:\n  - name: a\n    schedules: [{timezone: UTC}]\n",
    )
    with pytest.raises(InvalidInput, match=r"deployments\[0\].schedules\[0\]: a schedule needs"):
        load_project(path)


def test_project_missing_empty_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_project(tmp_path / "push-pools.yaml")
    with pytest.raises(InvalidInput, match="is empty"):
        load_project(write(tmp_path / "empty.yaml", ""))
    with pytest.raises(InvalidInput, match="must be a mapping"):
        load_project(write(tmp_path / "list.yaml", "- a\n- b\n"))


def test_save_deployment_round_trips(project: Path) -> None:
    path = write(project / "push-pools.yaml", "name: p\ndeployments:\n  - name: old\n")
    from push_pools.deploy.project import DeploymentSpec

    spec = DeploymentSpec.model_validate(
        {
            "name": "new",
            "entrypoint": "flows/etl.py:etl",
            "work_pool": {"name": "pool"},
            "schedules": [{"cron": "0 9 * * *", "timezone": "UTC"}],
        }
    )
    save_deployment(path, spec)
    save_deployment(path, spec)  # saving again replaces, not duplicates
    loaded = load_project(path)
    assert [d.name for d in loaded.deployments] == ["old", "new"]
    assert loaded.deployments[1] == spec


# --- deployment bodies -------------------------------------------------------------------------


def test_build_deployment_defaults_from_the_flow(project: Path) -> None:
    flow = load_flow("flows/etl.py:etl", project)
    body = build_deployment(flow, "daily", "pool", parameters={"day": "mon"}, cron="0 9 * * *")
    source = str((project / "flows").resolve())
    assert body["entrypoint"] == "etl.py:etl"
    assert body["pull_steps"] == [{PREFIX + "set_working_directory": {"directory": source}}]
    assert body["path"] == source
    assert body["schedules"] == [{"cron": "0 9 * * *", "active": True}]
    assert set(body["parameter_schema"]["properties"]) == {"day", "limit"}

    from_root = build_deployment(flow, "d", "pool", parameters={"day": "x"}, source_dir=project)
    assert from_root["entrypoint"] == "flows/etl.py:etl"


def test_build_deployment_rejects_bad_input(project: Path) -> None:
    flow = load_flow("flows/etl.py:etl", project)
    with pytest.raises(InvalidInput, match="limit"):
        build_deployment(flow, "d", "pool", parameters={"day": "x", "limit": "many"})
    with pytest.raises(InvalidInput, match="missing required parameter 'day'"):
        build_deployment(flow, "d", "pool")
    with pytest.raises(InvalidInput, match="not both"):
        build_deployment(flow, "d", "pool", parameters={"day": "x"}, cron="* * * * *", interval=60)
    with pytest.raises(InvalidInput, match="job variables need a work pool"):
        build_deployment(flow, "d", parameters={"day": "x"}, job_variables={"cpu": 1})
    with pytest.raises(InvalidInput, match="deployment 'bad name'"):
        build_deployment(flow, "bad name", "pool", parameters={"day": "x"})
    with pytest.raises(InvalidInput, match="unknown step"):
        build_deployment(flow, "d", "pool", parameters={"day": "x"}, pull_steps=[{"nope": {}}])
    with pytest.raises(InvalidInput, match="not a flow"):
        build_deployment(lambda: None, "d", "pool")  # type: ignore[arg-type]


def test_from_source_local_and_git(project: Path, tmp_path: Path, git_env: None) -> None:
    local = from_source(project, "flows/etl.py:etl")
    assert local.flow.name == "etl"
    assert local.pull_steps == [
        {PREFIX + "set_working_directory": {"directory": str(project.resolve())}}
    ]

    repo = tmp_path / "remote" / "code.git"
    make_repo(repo, {"flows/etl.py": FLOW_FILE})
    remote = from_source(f"file://{repo}", "flows/etl.py:cleanup")
    assert remote.flow.name == "cleanup-job"
    assert remote.pull_steps == [{PREFIX + "git_clone": {"repository": f"file://{repo}"}}]
    body = build_deployment(
        remote.flow,
        "weekly",
        "pool",
        entrypoint=remote.entrypoint,
        pull_steps=remote.pull_steps,
        path=remote.path,
    )
    assert body["entrypoint"] == "flows/etl.py:cleanup" and body["path"] is None

    with pytest.raises(InvalidInput, match="is not a directory"):
        from_source(tmp_path / "nowhere", "f.py:f")


def test_cli_module_is_cheap_to_import() -> None:
    # main.py imports the deploy command for every invocation, `--help` included.
    code = (
        "import sys, push_pools.cli.deploy; "
        "heavy = [m for m in ('pydantic', 'yaml', 'httpx', 'rich') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
