"""Help screens that list every command with its whole first sentence.

Click cuts a command's summary to the space left on one line and ends it with "..."; a user
then reads half a sentence. Here the summary is the first sentence, wrapped in its column.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

__all__ = ["HelpGroup"]

# Long enough for any first sentence; the help formatter wraps it to the terminal.
_SUMMARY_LIMIT = 300


class HelpGroup(TyperGroup):
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
