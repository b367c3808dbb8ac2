"""`push-pools block`: stored configuration such as cloud credentials (secrets encrypted)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from push_pools.cli.help import HelpGroup

app = typer.Typer(
    cls=HelpGroup,
    help="Store credentials and other configuration blocks.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable fields) for scripts.")]


def _client() -> Any:
    from push_pools.client import Client

    return Client(stdlib_http=True)


@app.command("create")
def create(
    block_type: Annotated[
        str,
        typer.Argument(help="aws-credentials, gcp-credentials, azure-credentials, secret, json."),
    ],
    name: Annotated[str, typer.Argument(help="Unique block name, referenced from job variables.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="field=value (repeatable); json fields take JSON or @file."),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="JSON or YAML file with the fields.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing block.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a block. Secret fields are encrypted by the server and never shown again."""
    from push_pools import blocks
    from push_pools.cli.output import console, print_json
    from push_pools.errors import InvalidInput

    kind = blocks.get_block_type(block_type)
    data: dict[str, Any] = {}
    if from_file is not None:
        import yaml

        try:
            loaded = yaml.safe_load(from_file.read_text())
        except OSError as exc:
            raise InvalidInput(f"cannot read '{from_file}': {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise InvalidInput(f"'{from_file}' is not valid JSON or YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidInput(f"'{from_file}' must hold a mapping of field names to values")
        data.update(loaded)
    data.update(blocks.parse_field_assignments(kind, set_ or []))
    blocks.validate_block_data(kind, data)
    with _client() as client:
        block = client.create_block(
            {"name": name, "block_type": kind.slug, "data": data, "overwrite": overwrite}
        )
    if as_json:
        print_json(block)
    else:
        console().print(f"Block [bold]{name}[/bold] ({kind.slug}) saved.")


@app.command("ls")
def ls(as_json: JsonOption = False) -> None:
    """List blocks (secret fields masked)."""
    from push_pools.cli.output import print_json, print_table, short_time

    with _client() as client:
        items = client.list_blocks()
    if as_json:
        print_json(items)
        return
    print_table(
        "Blocks",
        ["name", "type", "updated"],
        [[b["name"], b["block_type"], short_time(b["updated"])] for b in items],
    )


@app.command("inspect")
def inspect(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Show a block; secret fields are shown as ********."""
    from push_pools.cli.output import print_fields, print_json

    with _client() as client:
        block = client.get_block(name)
    if as_json:
        print_json(block)
    else:
        print_fields(f"Block {block['name']} ({block['block_type']})", block["data"])


@app.command("delete")
def delete(name: Annotated[str, typer.Argument()]) -> None:
    """Delete a block."""
    from push_pools.cli.output import console

    with _client() as client:
        client.delete_block(name)
    console().print(f"Block [bold]{name}[/bold] deleted.")


@app.command("types")
def types(as_json: JsonOption = False) -> None:
    """List block types and their fields."""
    from push_pools import blocks
    from push_pools.cli.output import print_json, print_table

    kinds = blocks.block_types()
    if as_json:
        print_json(
            [
                {
                    "slug": k.slug,
                    "description": k.description,
                    "fields": [f.__dict__ for f in k.fields],
                }
                for k in kinds
            ]
        )
        return
    print_table(
        "Block types",
        ["type", "fields (* secret)"],
        [[k.slug, ", ".join(f.name + ("*" if f.secret else "") for f in k.fields)] for k in kinds],
    )
