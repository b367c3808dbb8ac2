"""Help screens that list every command with its whole first sentence.

Click cuts a command's summary to the space left on one line and ends it with "..."; a user
then reads half a sentence. Here the summary is the first sentence, wrapped in its column.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

from push_pools.cli.coercion import install_light_coercion

__all__ = ["HelpGroup"]

# Long enough for any first sentence; the help formatter wraps it to the terminal.
_SUMMARY_LIMIT = 300


class HelpGroup(TyperGroup):
    """Also gives every command it hands out (and itself) the pydantic-free value conversion."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            install_light_coercion(command, getattr(ctx, "help_option_names", None))
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        install_light_coercion(self, ctx.help_option_names)
        return super().parse_args(ctx, args)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(_SUMMARY_LIMIT)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
