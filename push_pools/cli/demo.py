"""`push-pools demo`: the whole loop on this machine, no cloud account needed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

EXAMPLE_ENTRYPOINT = "hello_flow.py:hello"
NAMES = ["Ada", "Grace", "Linus", "Guido", "Barbara"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def examples_dir() -> Path:
    """The example flow shipped inside the package, so the demo works from any install."""
    import push_pools

    return Path(push_pools.__file__).resolve().parent / "examples"


def _readable_copy(source: Path, into: Path) -> Path:
    """The example in a directory every user may read: managed runs drop to an unprivileged
    user, who may not read the installation (a virtual env in a private home)."""
    import shutil

    target = into / "flows"
    target.mkdir(mode=0o755)
    target.chmod(0o755)  # whatever the umask
    copied = Path(shutil.copy(source / "hello_flow.py", target / "hello_flow.py"))
    copied.chmod(0o644)
    return target


def demo(
    runs: Annotated[int, typer.Option(min=1, max=50, help="How many runs to make.")] = 3,
) -> None:
    """Start a temporary server; run the example flow through a process pool with a worker,
    then through a managed pool that needs no worker; print results and logs; clean up."""
    import os
    import tempfile

    from push_pools.cli.output import console
    from push_pools.errors import PushPoolsError

    out = console()
    source = examples_dir()
    if not (source / "hello_flow.py").exists():
        raise PushPoolsError(f"the example flow is missing: {source / 'hello_flow.py'}")
    started = time.perf_counter()
    saved = {
        k: os.environ.get(k)
        for k in (
            "PUSH_POOLS_HOME",
            "PUSH_POOLS_API_URL",
            "PUSH_POOLS_DATABASE_URL",
            "PUSH_POOLS_API_KEY",
            "PUSH_POOLS_MANAGED_ISOLATION",
        )
    }
    try:
        with (
            tempfile.TemporaryDirectory(prefix="push-pools-demo-") as home,
            tempfile.TemporaryDirectory(prefix="push-pools-demo-flows-") as flows,
        ):
            os.environ["PUSH_POOLS_HOME"] = home
            os.environ.pop("PUSH_POOLS_DATABASE_URL", None)
            os.environ.pop("PUSH_POOLS_API_KEY", None)
            Path(flows).chmod(0o755)
            _isolate_or_say_why_not(out, Path(home))
            final = _run_demo(out, _readable_copy(source, Path(flows)), home, runs)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ok = all(r["state"] == "COMPLETED" for r in final)
    out.print(
        f"Demo {'finished' if ok else 'FAILED'} in {time.perf_counter() - started:.1f}s; "
        "everything it created is cleaned up."
    )
    if not ok:
        raise typer.Exit(1)


def _isolate_or_say_why_not(out: Any, home: Path) -> None:
    """The demo's own temporary server runs its managed flow isolated where it can; where it
    cannot (e.g. a root user's checkout in a private directory, which the sandbox's user cannot
    read), unisolated, saying why, instead of failing the whole demo."""
    import os

    from push_pools.managed import isolation

    found = isolation.detect(home=home)
    if found.mode == "unavailable":
        os.environ["PUSH_POOLS_MANAGED_ISOLATION"] = "none"
        out.print(
            f"note: managed runs cannot be isolated here ({found.reason}); this demo's "
            "temporary server runs its managed flow unisolated. A real server refuses them.",
            markup=False,
        )


def _run_demo(out: Any, source: Path, home: str, runs: int) -> list[dict[str, Any]]:
    import os

    from push_pools.client import Client
    from push_pools.embedded import EmbeddedServer

    with EmbeddedServer() as server:
        os.environ["PUSH_POOLS_API_URL"] = server.api_url
        out.print(f"[bold]1.[/bold] API server on {server.api_url} (store in {home})")
        with Client(server.api_url) as client:
            final = _process_pool_part(out, client, source, runs)
            final += _managed_pool_part(out, client, source)
    return final


def _deploy_example(client: Any, source: Path, name: str, pool: str) -> dict[str, Any]:
    from push_pools.deploy.entrypoints import load_flow

    flow = load_flow(EXAMPLE_ENTRYPOINT, source)
    return client.upsert_deployment(
        {
            "name": name,
            "flow_name": flow.name,
            "entrypoint": EXAMPLE_ENTRYPOINT,
            "work_pool_name": pool,
            "parameter_schema": flow.parameter_schema(),
            "pull_steps": [{"set_working_directory": {"directory": str(source)}}],
        }
    )


def _process_pool_part(out: Any, client: Any, source: Path, runs: int) -> list[dict[str, Any]]:
    import os

    from push_pools.executors.process.executor import ProcessExecutor
    from push_pools.worker import Worker

    client.create_work_pool({"name": "demo-pool", "type": "process"})
    out.print("[bold]2.[/bold] work pool 'demo-pool' (type process) created")
    with open(os.devnull, "w") as quiet:  # the runs' logs are shown below instead
        worker = Worker(
            "demo-pool",
            limit=4,
            name="demo-worker",
            poll_wait_seconds=1.0,
            executor=ProcessExecutor(output=quiet),
        ).start()
        out.print("[bold]3.[/bold] worker 'demo-worker' polling 'demo-pool'")
        deployment = _deploy_example(client, source, "demo", "demo-pool")
        out.print(
            f"[bold]4.[/bold] deployment '{deployment['full_name']}' created "
            f"from examples/{EXAMPLE_ENTRYPOINT}"
        )
        created = [
            client.create_run(
                deployment["id"],
                {"parameters": {"name": NAMES[i % len(NAMES)], "times": i % 3 + 1}},
            )
            for i in range(runs)
        ]
        out.print(f"[bold]5.[/bold] {runs} runs created; the worker runs them")
        final = _wait_all(client, [r["id"] for r in created])
        worker.stop()
    _show_results(out, client, "Process pool results", final)
    return final


def _managed_pool_part(out: Any, client: Any, source: Path) -> list[dict[str, Any]]:
    client.create_work_pool({"name": "demo-managed", "type": "managed"})
    out.print(
        "[bold]6.[/bold] work pool 'demo-managed' (type managed) created: the server runs "
        "its flows itself, no worker"
    )
    deployment = _deploy_example(client, source, "managed", "demo-managed")
    run = client.create_run(deployment["id"], {"parameters": {"name": "managed pool"}})
    final = _wait_all(client, [run["id"]])
    _show_results(out, client, "Managed pool result", final)
    return final


def _show_results(out: Any, client: Any, title: str, final: list[dict[str, Any]]) -> None:
    from push_pools.cli.flow_run import format_log
    from push_pools.cli.output import print_table, styled_state

    print_table(
        title,
        ["run", "parameters", "state", "result", "duration"],
        [
            [r["name"], r["parameters"], styled_state(r["state"]), r["result"], _seconds(r)]
            for r in final
        ],
    )
    first = final[0]
    out.print(f"[bold]Logs of {first['name']}:[/bold]")
    for entry in client.get_logs(first["id"]):
        out.print("  " + format_log(entry), markup=False)
    if first["state"] != "COMPLETED" and first["state_message"]:
        out.print(first["state_message"], markup=False)


def _wait_all(client: Any, run_ids: list[str], timeout: float = 120.0) -> list[dict[str, Any]]:
    from push_pools.errors import PushPoolsError

    deadline = time.monotonic() + timeout
    while True:
        runs = [client.get_run(i) for i in run_ids]
        if all(r["state"] in FINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise PushPoolsError(f"the demo's runs did not finish within {timeout:g} s")
        time.sleep(0.1)


def _seconds(run: dict[str, Any]) -> str:
    from datetime import datetime

    if not run["start_time"] or not run["end_time"]:
        return ""
    delta = datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])
    return f"{delta.total_seconds():.2f}s"
