"""Routes for infrastructure records: what provisioners created or adopted for a work pool.

Records are keyed by pool NAME and may exist before the pool does (provisioning runs first and
records under the name of the pool it will create) and after it is deleted (until teardown).
The records' meaning belongs to provisioners/plan.py; here they are only kept and served.

Records are stored and served in clear, so no secret may travel through these routes: an
access key's secret never goes in `data` (it goes into an encrypted block, and `data` holds the
block's name). Data with a credential-like key ("secret_access_key", "password", "token", ...)
is refused with 422.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from push_pools.api.deps import SessionDep, StoreRoute
from push_pools.models import NAME_PATTERN
from push_pools.store import infrastructure as infrastructure_store
from push_pools.store.tables import InfrastructureRecord

router = APIRouter(tags=["infrastructure"], route_class=StoreRoute)

STEP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$"
KIND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,199}$"
# Printable text only: ARNs and resource ids never hold control characters, and PostgreSQL
# refuses NUL in text columns.
IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_DATA_BYTES = 64 * 1024
MAX_DATA_DEPTH = 16

PoolName = Annotated[str, Path(pattern=NAME_PATTERN, description="The work pool's name.")]
StepId = Annotated[str, Path(pattern=STEP_PATTERN, description="The provisioning step's id.")]


class InfrastructureRecordIn(BaseModel):
    """A record as a provisioner saves it. `data` never holds a secret."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=KIND_PATTERN, description='Resource kind, e.g. "aws:iam:user".')
    identifier: str = Field(
        min_length=1, max_length=2048, pattern=IDENTIFIER_PATTERN, description="ARN or id."
    )
    created: bool = Field(
        description="True: the provisioner created it and teardown deletes it; "
        "False: adopted, teardown only forgets it."
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON outputs later steps and the pool's job template need; no secrets.",
    )

    @field_validator("data")
    @classmethod
    def _bounded_and_secret_free(cls, data: dict[str, Any]) -> dict[str, Any]:
        # Depth first: the size check and the secret scan below walk the whole structure.
        if _depth(data) > MAX_DATA_DEPTH:
            raise ValueError(f"data is nested deeper than {MAX_DATA_DEPTH} levels")
        try:
            size = len(json.dumps(data, allow_nan=False).encode())
        except ValueError as exc:  # NaN or Infinity: valid Python, not valid JSON to send back
            raise ValueError(f"data is not plain JSON: {exc}") from None
        if size > MAX_DATA_BYTES:
            raise ValueError(f"data is {size} bytes of JSON; at most {MAX_DATA_BYTES} are kept")
        # Imported here: the provisioners' plan module is only needed when records are saved.
        from provisioners.plan import secret_keys

        leaked = secret_keys(data)
        if leaked:
            raise ValueError(
                f"data must not hold secrets (keys {leaked}); store them in a block and "
                "record the block's name"
            )
        return data


class InfrastructureRecordOut(BaseModel):
    pool_name: str
    step: str
    kind: str
    identifier: str
    created: bool
    data: dict[str, Any]
    recorded: datetime = Field(description="When the step's record was first saved.")
    updated: datetime


def _depth(value: Any) -> int:
    """How deeply dicts and lists nest in `value`, without recursion (no RecursionError)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: list[Any] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DATA_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def record_out(record: InfrastructureRecord) -> InfrastructureRecordOut:
    return InfrastructureRecordOut(
        pool_name=record.pool_name,
        step=record.step,
        kind=record.kind,
        identifier=record.identifier,
        created=record.created,
        data=record.data,
        recorded=record.recorded,
        updated=record.updated,
    )


@router.get("/work_pools/{name}/infrastructure", response_model=list[InfrastructureRecordOut])
def list_infrastructure(name: PoolName, session: SessionDep) -> list[InfrastructureRecordOut]:
    """The pool's records in save order; empty (not 404) for a name with no records."""
    return [record_out(r) for r in infrastructure_store.list_records(session, name)]


@router.put("/work_pools/{name}/infrastructure/{step}", response_model=InfrastructureRecordOut)
def save_infrastructure(
    name: PoolName, step: StepId, body: InfrastructureRecordIn, session: SessionDep
) -> InfrastructureRecordOut:
    """Insert or replace the record of one step; the pool need not exist yet."""
    record = infrastructure_store.save_record(
        session,
        name,
        step,
        kind=body.kind,
        identifier=body.identifier,
        created=body.created,
        data=body.data,
    )
    return record_out(record)


@router.delete("/work_pools/{name}/infrastructure/{step}", status_code=204)
def delete_infrastructure(name: PoolName, step: StepId, session: SessionDep) -> None:
    """Forget one step's record (the resource itself is the provisioner's business)."""
    infrastructure_store.delete_record(session, name, step)
