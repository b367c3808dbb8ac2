"""`push-pools work-queue`: queues order and limit the runs within a pool."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from push_pools.cli.help import HelpGroup

app = typer.Typer(
    cls=HelpGroup,
    help="Create and manage the work queues of a pool.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

PoolOption = Annotated[str, typer.Option("--pool", "-p", help="The queue's work pool.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable fields) for scripts.")]


def _client() -> Any:
    from push_pools.client import Client

    return Client(stdlib_http=True)


def _show(queue: dict[str, Any], as_json: bool, verb: str | None = None) -> None:
    from push_pools.cli.output import console, print_fields, print_json

    if as_json:
        print_json(queue)
    elif verb:
        console().print(
            f"Work queue [bold]{queue['name']}[/bold] of pool {queue['work_pool_name']} {verb}."
        )
    else:
        print_fields(f"Work queue {queue['name']}", queue)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Queue name, unique in its pool.")],
    pool: PoolOption,
    priority: Annotated[int, typer.Option(min=1, help="1 is served first.")] = 1,
    concurrency_limit: Annotated[int | None, typer.Option(min=0)] = None,
    description: Annotated[str | None, typer.Option()] = None,
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a work queue in a pool."""
    body = {
        "name": name,
        "priority": priority,
        "concurrency_limit": concurrency_limit,
        "description": description,
        "paused": paused,
    }
    with _client() as client:
        _show(client.create_work_queue(pool, body), as_json, "created")


@app.command("ls")
def ls(pool: PoolOption, as_json: JsonOption = False) -> None:
    """List a pool's queues in priority order."""
    from push_pools.cli.output import ago, print_json, print_table

    with _client() as client:
        queues = client.list_work_queues(pool)
    if as_json:
        print_json(queues)
        return
    print_table(
        f"Work queues of {pool}",
        ["name", "priority", "status", "concurrency limit", "last polled"],
        [
            [
                q["name"],
                q["priority"],
                q["status"],
                q["concurrency_limit"] or "none",
                ago(q["last_polled"]),
            ]
            for q in queues
        ],
    )


@app.command("inspect")
def inspect(
    name: Annotated[str, typer.Argument()], pool: PoolOption, as_json: JsonOption = False
) -> None:
    """Show a work queue."""
    with _client() as client:
        _show(client.get_work_queue(pool, name), as_json)


@app.command("update")
def update(
    name: Annotated[str, typer.Argument()],
    pool: PoolOption,
    priority: Annotated[int | None, typer.Option(min=1)] = None,
    concurrency_limit: Annotated[int | None, typer.Option(min=0)] = None,
    clear_concurrency_limit: Annotated[bool, typer.Option("--clear-concurrency-limit")] = False,
    description: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a queue's priority, concurrency limit or description."""
    body = {
        "priority": priority,
        "concurrency_limit": concurrency_limit,
        "clear_concurrency_limit": clear_concurrency_limit,
        "description": description,
    }
    with _client() as client:
        _show(client.update_work_queue(pool, name, body), as_json, "updated")


@app.command("pause")
def pause(
    name: Annotated[str, typer.Argument()], pool: PoolOption, as_json: JsonOption = False
) -> None:
    """Pause a queue: its runs wait until it is resumed."""
    with _client() as client:
        _show(client.update_work_queue(pool, name, {"paused": True}), as_json, "paused")


@app.command("resume")
def resume(
    name: Annotated[str, typer.Argument()], pool: PoolOption, as_json: JsonOption = False
) -> None:
    """Resume a paused queue."""
    with _client() as client:
        _show(client.update_work_queue(pool, name, {"paused": False}), as_json, "resumed")


@app.command("delete")
def delete(name: Annotated[str, typer.Argument()], pool: PoolOption) -> None:
    """Delete a queue; its deployments and waiting runs move to the 'default' queue."""
    from push_pools.cli.output import console

    with _client() as client:
        client.delete_work_queue(pool, name)
    console().print(f"Work queue [bold]{name}[/bold] of pool {pool} deleted.")
