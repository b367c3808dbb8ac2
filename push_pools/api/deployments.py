"""Routes for deployments and creating runs of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.models import (
    DeleteOutcome,
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    FlowRunOut,
    RunCreate,
)
from push_pools.store import deletes
from push_pools.store import deployments as deployment_store
from push_pools.store import runs as run_store

router = APIRouter(tags=["deployments"], route_class=StoreRoute)


def run_wake_key(run_pool_id: str | None, deployment_id: str | None) -> str | None:
    """The notifier key of whoever claims this run: its pool's workers, or a serve process."""
    return run_pool_id or (f"deployment:{deployment_id}" if deployment_id else None)


@router.post("/deployments", response_model=DeploymentOut)
def upsert_deployment(
    body: DeploymentCreate,
    session: SessionDep,
    notifier: NotifierDep,
    response: Response,
    dry_run: Annotated[
        bool, Query(description="Only validate: answer as if saved, change nothing.")
    ] = False,
) -> DeploymentOut:
    """Create the deployment, or replace the one with the same flow name and name."""
    deployment, created = deployment_store.upsert_deployment(session, body)
    out = deployment_store.deployment_out(session, deployment)
    if dry_run:
        session.rollback()
        return out
    response.status_code = 201 if created else 200
    session.commit()
    notifier.notify("scheduler")
    return out


@router.get("/deployments", response_model=list[DeploymentOut])
def list_deployments(session: SessionDep) -> list[DeploymentOut]:
    return [
        deployment_store.deployment_out(session, d)
        for d in deployment_store.list_deployments(session)
    ]


@router.get("/deployments/name/{flow_name}/{name}", response_model=DeploymentOut)
def get_deployment_by_name(flow_name: str, name: str, session: SessionDep) -> DeploymentOut:
    deployment = deployment_store.get_deployment_by_name(session, flow_name, name)
    return deployment_store.deployment_out(session, deployment)


@router.get("/deployments/{deployment_id}", response_model=DeploymentOut)
def get_deployment(deployment_id: str, session: SessionDep) -> DeploymentOut:
    deployment = deployment_store.get_deployment(session, deployment_id)
    return deployment_store.deployment_out(session, deployment)


@router.patch("/deployments/{deployment_id}", response_model=DeploymentOut)
def update_deployment(
    deployment_id: str, body: DeploymentUpdate, session: SessionDep, notifier: NotifierDep
) -> DeploymentOut:
    deployment = deployment_store.update_deployment(session, deployment_id, body)
    out = deployment_store.deployment_out(session, deployment)
    session.commit()
    notifier.notify("scheduler")
    if body.paused is not None:
        # Whoever long-polls for its runs looks again now (a stopping `serve` exits at once).
        notifier.notify(run_wake_key(deployment.work_pool_id, deployment.id))
    return out


@router.delete("/deployments/{deployment_id}", response_model=DeleteOutcome)
def delete_deployment(
    deployment_id: str,
    session: SessionDep,
    notifier: NotifierDep,
    force: Annotated[
        bool, Query(description="Also with runs in flight: cancel them first.")
    ] = False,
    dry_run: Annotated[
        bool, Query(description="Only answer what would happen; change nothing.")
    ] = False,
) -> DeleteOutcome:
    """Delete a deployment. With runs in flight it answers 409, unless `force`."""
    deployment = deployment_store.get_deployment(session, deployment_id)
    wake = run_wake_key(deployment.work_pool_id, deployment.id)
    outcome = deletes.delete_deployment(session, deployment_id, force=force)
    if dry_run:
        session.rollback()
        return outcome.model_copy(update={"deleted": False})
    session.commit()
    if outcome.cancelled_runs:
        notifier.notify(wake)  # whoever runs them hears of the cancel now, not at its next poll
    return outcome


@router.post("/deployments/{deployment_id}/runs", status_code=201, response_model=FlowRunOut)
def create_run(
    deployment_id: str, body: RunCreate, session: SessionDep, notifier: NotifierDep
) -> FlowRunOut:
    deployment = deployment_store.get_deployment(session, deployment_id)
    run = deployment_store.create_run(session, deployment, body)
    out = run_store.run_out(session, run)
    session.commit()  # commit before waking workers, so their claim sees the run
    notifier.notify(run_wake_key(run.work_pool_id, run.deployment_id))
    return out
