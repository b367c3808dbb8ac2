"""Asking before a destructive command, and refusing when there is no one to ask."""

from __future__ import annotations

import sys

import typer


def confirm_delete(question: str, yes: bool) -> None:
    """Ask `question` on the terminal; without one, only `--yes` lets the deletion go on."""
    from push_pools.errors import InvalidInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput("refusing to delete without confirmation (no terminal): pass --yes")
    typer.confirm(question, abort=True)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def consequences(outcome: dict, *, will: bool) -> list[str]:
    """What a delete pauses and cancels, in words ("will pause" before, "paused" after)."""
    parts = []
    paused = outcome.get("paused_deployments") or []
    if paused:
        verb = "pause" if will else "paused"
        parts.append(f"{verb} {plural(len(paused), 'deployment')} ({', '.join(paused)})")
    cancelled = outcome.get("cancelled_runs") or []
    if cancelled:
        parts.append(f"{'cancel' if will else 'cancelled'} {plural(len(cancelled), 'run')}")
    return parts
