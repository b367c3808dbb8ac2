"""`push-pools demo`: the whole loop on this machine, no cloud account needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EXAMPLE_ENTRYPOINT = "hello_flow.py:hello"


def examples_dir() -> Path:
    import push_pools

    return Path(push_pools.__file__).resolve().parent.parent / "examples"


def demo(
    runs: Annotated[int, typer.Option(min=1, max=50, help="How many runs to make.")] = 3,
) -> None:
    """Start a temporary server, a process pool and a worker; deploy and run the example flow."""
    import os
    import tempfile
    import time

    from push_pools.cli.flow_run import format_log
    from push_pools.cli.output import console, print_table, styled_state
    from push_pools.client import Client
    from push_pools.deploy.entrypoints import load_flow
    from push_pools.embedded import EmbeddedServer
    from push_pools.errors import PushPoolsError
    from push_pools.worker import Worker

    out = console()
    source = examples_dir()
    if not (source / "hello_flow.py").exists():
        raise PushPoolsError(f"the example flow is missing: {source / 'hello_flow.py'}")
    with tempfile.TemporaryDirectory(prefix="push-pools-demo-") as home:
        saved = {
            k: os.environ.get(k)
            for k in (
                "PUSH_POOLS_HOME",
                "PUSH_POOLS_API_URL",
                "PUSH_POOLS_DATABASE_URL",
                "PUSH_POOLS_API_KEY",
            )
        }
        os.environ["PUSH_POOLS_HOME"] = home
        os.environ.pop("PUSH_POOLS_DATABASE_URL", None)
        os.environ.pop("PUSH_POOLS_API_KEY", None)
        started = time.perf_counter()
        try:
            with EmbeddedServer() as server:
                os.environ["PUSH_POOLS_API_URL"] = server.api_url
                out.print(f"[bold]1.[/bold] API server on {server.api_url} (store in {home})")
                with Client(server.api_url) as client:
                    client.create_work_pool({"name": "demo-pool", "type": "process"})
                    out.print("[bold]2.[/bold] work pool 'demo-pool' (type process) created")
                    worker = Worker(
                        "demo-pool", limit=4, name="demo-worker", poll_wait_seconds=1.0
                    ).start()
                    worker.executor._output = open(os.devnull, "w")  # logs are shown below
                    out.print("[bold]3.[/bold] worker 'demo-worker' polling 'demo-pool'")
                    flow = load_flow(EXAMPLE_ENTRYPOINT, source)
                    deployment = client.upsert_deployment(
                        {
                            "name": "demo",
                            "flow_name": flow.name,
                            "entrypoint": EXAMPLE_ENTRYPOINT,
                            "work_pool_name": "demo-pool",
                            "parameter_schema": flow.parameter_schema(),
                            "pull_steps": [{"set_working_directory": {"directory": str(source)}}],
                        }
                    )
                    out.print(
                        f"[bold]4.[/bold] deployment '{deployment['full_name']}' created "
                        f"from examples/{EXAMPLE_ENTRYPOINT}"
                    )
                    names = ["Ada", "Grace", "Linus", "Guido", "Barbara"]
                    created = [
                        client.create_run(
                            deployment["id"],
                            {"parameters": {"name": names[i % len(names)], "times": i % 3 + 1}},
                        )
                        for i in range(runs)
                    ]
                    out.print(f"[bold]5.[/bold] {runs} runs created; waiting for them to finish")
                    final = _wait_all(client, [r["id"] for r in created])
                    print_table(
                        "Results",
                        ["run", "parameters", "state", "result", "duration"],
                        [
                            [
                                r["name"],
                                r["parameters"],
                                styled_state(r["state"]),
                                r["result"],
                                _seconds(r),
                            ]
                            for r in final
                        ],
                    )
                    first = final[0]
                    out.print(f"[bold]Logs of {first['name']}:[/bold]")
                    for entry in client.get_logs(first["id"]):
                        out.print("  " + format_log(entry), markup=False)
                    worker.stop()
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


def _wait_all(client: object, run_ids: list[str], timeout: float = 120.0) -> list[dict]:
    import time

    from push_pools.errors import PushPoolsError

    deadline = time.monotonic() + timeout
    while True:
        runs = [client.get_run(i) for i in run_ids]  # type: ignore[attr-defined]
        if all(r["state"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise PushPoolsError("the demo's runs did not finish within 120 s")
        time.sleep(0.1)


def _seconds(run: dict) -> str:
    from datetime import datetime

    if not run["start_time"] or not run["end_time"]:
        return ""
    delta = datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])
    return f"{delta.total_seconds():.2f}s"
