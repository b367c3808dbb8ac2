"""Code bundles in the store: saved once by their sha256, read back whole (or where a bucket
holds them: push_pools/bundle_storage.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.store.tables import CodeBundle, Deployment

__all__ = ["bundle_of_steps", "deployment_bundle", "exists", "load", "save"]

STEP_SHORT_NAME = "pull_bundle"


def exists(session: Session, sha256: str) -> int | None:
    """The stored bundle's size, or None when there is none."""
    return session.execute(
        select(CodeBundle.size).where(CodeBundle.sha256 == sha256)
    ).scalar_one_or_none()


def location(session: Session, sha256: str) -> tuple[bool, str | None]:
    """(whether there is a row, the bucket object URL holding its bytes or None: the store)."""
    row = session.execute(
        select(CodeBundle.location).where(CodeBundle.sha256 == sha256)
    ).one_or_none()
    return (False, None) if row is None else (True, row[0] or None)


def save(session: Session, sha256: str, data: bytes, location: str | None = None) -> bool:
    """Store a bundle (whose hash the caller checked), or only its row when `location` says
    which bucket object holds its bytes; False when it was there already, in that place.

    A bundle lives where its latest upload put it: another place (the store, or another
    pool's bucket) moves the row there, so a redeploy repairs a bundle whose bucket is gone."""
    stored = b"" if location else data
    row = session.get(CodeBundle, sha256)
    if row is None:
        session.add(CodeBundle(sha256=sha256, size=len(data), data=stored, location=location))
    elif (row.location or None) == location:
        return False
    else:
        row.data, row.location = stored, location
    session.flush()
    return True


def load(session: Session, sha256: str) -> bytes | str | None:
    """The bundle's bytes, or the URL of the bucket object holding them, or None."""
    row = session.execute(
        select(CodeBundle.data, CodeBundle.location).where(CodeBundle.sha256 == sha256)
    ).one_or_none()
    if row is None:
        return None
    data, location = row
    return location if location else data


def bundle_of_steps(steps: object) -> set[str]:
    """The sha256 of every pull_bundle step among a deployment's pull steps."""
    found: set[str] = set()
    if not isinstance(steps, list):
        return found
    for step in steps:
        if not isinstance(step, dict) or len(step) != 1:
            continue
        ((name, options),) = step.items()
        if str(name).rpartition(".")[2] == STEP_SHORT_NAME and isinstance(options, dict):
            sha = options.get("sha256")
            if isinstance(sha, str):
                found.add(sha)
    return found


def deployment_bundle(session: Session, deployment_id: str) -> set[str]:
    """The bundles a deployment's runs may download."""
    steps = session.execute(
        select(Deployment.pull_steps).where(Deployment.id == deployment_id)
    ).scalar_one_or_none()
    return bundle_of_steps(steps)
