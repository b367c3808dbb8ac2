"""`push-pools worker`: run flow runs of a polled pool (process, docker) from this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from push_pools.cli.help import HelpGroup

app = typer.Typer(
    cls=HelpGroup,
    help="Start a worker that runs a pool's flow runs here.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("start")
def start(
    pool: Annotated[str, typer.Option("--pool", "-p", help="Work pool to take runs from.")],
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Only these queues of the pool (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most runs executing at once.")] = 4,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host-pid).")] = None,
) -> None:
    """Poll the pool and run each claimed flow run the pool's way: a subprocess (process pools)
    or a container on the Docker engine DOCKER_HOST names (docker pools).

    Ctrl-C (or SIGTERM) stops claiming and waits for running runs to finish; a second Ctrl-C
    cancels them.
    """
    import logging
    import signal
    import threading

    from push_pools.cli.output import console
    from push_pools.client import Client
    from push_pools.errors import InvalidInput, PushPoolsError
    from push_pools.executors import load_executor
    from push_pools.worker import Worker

    with Client() as client:
        info = client.get_work_pool(pool)
        for queue_name in queue or []:
            client.get_work_queue(pool, queue_name)
    from push_pools import pool_types

    if pool_types.get(info["type"]).is_push:
        raise InvalidInput(
            f"work pool '{pool}' is a push pool ({info['type']}): the server submits its runs, "
            "no worker is needed"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll is noise
    executor = load_executor(info["type"])
    worker = Worker(pool, queues=queue, limit=limit, name=name, executor=executor).start()
    out = console()
    out.print(
        f"Worker [bold]{worker.name}[/bold] started on pool [bold]{pool}[/bold] "
        f"(limit {limit}{', queues ' + ', '.join(queue) if queue else ''}). Ctrl-C to stop."
    )
    stop_requests = []
    stopped = threading.Event()

    def stop(cancel_running: bool) -> None:
        worker.stop(cancel_running=cancel_running)
        stopped.set()

    def on_signal(signum: int, _frame: object) -> None:
        stop_requests.append(signum)
        if len(stop_requests) == 1:
            out.print(
                "Stopping: no new runs; waiting for running runs (Ctrl-C again cancels them)."
            )
            threading.Thread(target=stop, args=(False,), daemon=True).start()
        else:
            out.print("Cancelling running runs.")
            threading.Thread(target=stop, args=(True,), daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopped.wait(0.5):
        if worker.pool_deleted.is_set():
            worker.stop()  # its runs were cancelled: this waits for them to be reaped
            raise PushPoolsError(f"work pool '{pool}' was deleted; stopping")
    out.print("Worker stopped.")
