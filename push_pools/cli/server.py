"""`push-pools server`: run the API server (with its scheduler) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from push_pools.cli.help import HelpGroup

app = typer.Typer(
    cls=HelpGroup, help="Run the API server.", no_args_is_help=True, rich_markup_mode=None
)


DEFAULT_PORT = 4200


@app.command("start")
def start(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on (default: the port of PUSH_POOLS_API_URL when it names this "
            "machine, else 4200).",
            min=1,
            max=65535,
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    insecure_no_api_key: Annotated[
        bool,
        typer.Option(
            "--insecure-no-api-key",
            help="Listen on a non-loopback address without PUSH_POOLS_API_KEY: anyone who can "
            "reach the port can then run code on managed pools and use every credentials "
            "block. Only for a network you fully trust.",
        ),
    ] = False,
) -> None:
    """Start the API server and its scheduler; the store is PUSH_POOLS_DATABASE_URL or SQLite.

    On an address other than loopback the server needs an API key (PUSH_POOLS_API_KEY); requests
    must name the server by one of its own host names (add others to PUSH_POOLS_ALLOWED_HOSTS).
    """
    import os

    import uvicorn

    from push_pools import settings
    from push_pools.api.app import create_app
    from push_pools.api.exposure import is_loopback, is_wildcard
    from push_pools.errors import InvalidInput

    port = port or _port_from_api_url(settings.api_url())
    _check_port_free(host, port)
    if not is_loopback(host) and not settings.api_key():
        if not insecure_no_api_key:
            raise InvalidInput(
                f"refusing to listen on {host} without an API key: anyone who can reach port "
                f"{port} could run code on this machine (managed pools) and use every stored "
                "credential. Set PUSH_POOLS_API_KEY (for example to the output of `python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'`), listen on 127.0.0.1, or "
                "pass --insecure-no-api-key on a network you fully trust"
            )
        typer.echo(
            typer.style("Warning:", fg="yellow")
            + f" listening on {host} with NO API key (--insecure-no-api-key): anyone who can "
            f"reach port {port} controls this server",
            err=True,
        )
    url = f"http://{host}:{port}/api"
    # Runs the server starts itself (managed and push pools) call it back at this address.
    reachable = url if not is_wildcard(host) else f"http://127.0.0.1:{port}/api"
    application = create_app(
        api_url=os.environ.get("PUSH_POOLS_PUBLIC_API_URL") or reachable, bind_host=host
    )
    isolation = application.state.managed_isolation
    # Plain click output, not rich: a server that idles for days should not keep rich's
    # modules (about 1 MiB) for the one banner it prints.
    typer.echo(
        f"push-pools server listening on {typer.style(url, bold=True)}\n"
        f"store: {_describe_store(settings.database_url())}\n"
        # Unisolated or refused managed runs were announced with a warning already.
        + (f"{isolation.startup_line()}\n" if isolation and isolation.mode == "bwrap" else "")
        + f"clients find it with: export PUSH_POOLS_API_URL={url}\n"
        f"API docs: http://{host}:{port}/api/docs"
    )
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


def _port_from_api_url(url: str) -> int:
    """The port clients are told to use, when they are told to use this machine."""
    from urllib.parse import urlsplit

    from push_pools.api.exposure import is_loopback, is_wildcard

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return DEFAULT_PORT
    if port and parts.hostname and (is_loopback(parts.hostname) or is_wildcard(parts.hostname)):
        return port
    return DEFAULT_PORT


def _check_port_free(host: str, port: int) -> None:
    """One clear line, before any banner, instead of uvicorn's error after it."""
    import errno
    import socket

    from push_pools.errors import InvalidInput

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidInput(
                    f"port {port} on {host} is already in use (another push-pools server?): "
                    "stop it, or pick another with --port"
                ) from exc
            raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _describe_store(url: str) -> str:
    if url.startswith("sqlite"):
        return url.split("///", 1)[-1]
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"  # never print the password
