"""`push-pools server`: run the API server (with its scheduler) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Run the API server.", no_args_is_help=True, rich_markup_mode=None)


@app.command("start")
def start(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 4200,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Start the API server and its scheduler; the store is PUSH_POOLS_DATABASE_URL or SQLite."""
    import os

    import uvicorn

    from push_pools import settings
    from push_pools.api.app import create_app
    from push_pools.cli.output import console

    url = f"http://{host}:{port}/api"
    # Runs the server starts itself (managed and push pools) call it back at this address.
    reachable = url if host not in ("0.0.0.0", "::") else f"http://127.0.0.1:{port}/api"
    application = create_app(api_url=os.environ.get("PUSH_POOLS_PUBLIC_API_URL") or reachable)
    isolation = application.state.managed_isolation
    console().print(
        f"push-pools server listening on [bold]{url}[/bold]\n"
        f"store: {_describe_store(settings.database_url())}\n"
        # Unisolated or refused managed runs were announced with a warning already.
        + (f"{isolation.startup_line()}\n" if isolation and isolation.mode == "bwrap" else "")
        + f"clients find it with: export PUSH_POOLS_API_URL={url}\n"
        f"API docs: http://{host}:{port}/api/docs"
    )
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


def _describe_store(url: str) -> str:
    if url.startswith("sqlite"):
        return url.split("///", 1)[-1]
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"  # never print the password
