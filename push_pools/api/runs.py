"""Routes for flow runs: reading, states, cancellation, logs, and serve-process polling."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query

from push_pools.api.deployments import run_wake_key
from push_pools.api.deps import NotifierDep, SessionDep, StoreDep, StoreRoute
from push_pools.api.pools import long_poll
from push_pools.errors import InvalidInput
from push_pools.models import (
    ClaimedRun,
    ExecutionContext,
    FlowRunOut,
    LogIn,
    LogOut,
    NoNulText,
    PollRequest,
    PollResponse,
    StateDecision,
    StateOut,
    StateProposal,
)
from push_pools.states import StateType
from push_pools.store import deployments as deployment_store
from push_pools.store import logs as log_store
from push_pools.store import pools as pool_store
from push_pools.store import receipts, run_tokens
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import Deployment, utcnow

router = APIRouter(tags=["flow runs"], route_class=StoreRoute)

# Engines and workers send one with each write; a retried request that carries it again is
# answered as the first one was, and not applied twice.
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="A client-made id of this write: a retry with the same id is applied once.",
    ),
]


@router.get(
    "/flow_runs",
    response_model=list[FlowRunOut],
    description="Runs matching every filter: those due by now, the latest first, then the "
    "upcoming ones, the soonest first.",
)
def list_flow_runs(
    session: SessionDep,
    state: Annotated[list[StateType] | None, Query()] = None,
    deployment_id: str | None = None,
    deployment: Annotated[
        str | None, Query(description="A deployment's 'flow-name/deployment-name'.")
    ] = None,
    work_pool: Annotated[str | None, Query(description="A work pool's name.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> list[FlowRunOut]:
    work_pool_id = pool_store.get_pool(session, work_pool).id if work_pool else None
    if deployment:
        flow_name, sep, name = deployment.partition("/")
        if not sep:
            raise InvalidInput(
                f"'{deployment}' is not a deployment name: use 'flow-name/deployment-name'"
            )
        deployment_id = deployment_store.get_deployment_by_name(session, flow_name, name).id
    runs = run_store.list_runs(
        session,
        states=state,
        deployment_id=deployment_id,
        work_pool_id=work_pool_id,
        limit=limit,
    )
    return run_store.runs_out(session, runs)


@router.get("/flow_runs/{run_id}", response_model=FlowRunOut)
def get_flow_run(
    run_id: Annotated[
        str, Path(description="The run's id; also its name or a unique prefix of its id.")
    ],
    session: SessionDep,
) -> FlowRunOut:
    return run_store.run_out(session, run_store.find_run(session, run_id))


@router.get("/flow_runs/{run_id}/states", response_model=list[StateOut])
def get_flow_run_states(run_id: str, session: SessionDep) -> list[StateOut]:
    return run_store.states_of(session, run_id)


@router.get("/flow_runs/{run_id}/execution", response_model=ExecutionContext)
def get_execution_context(run_id: str, session: SessionDep) -> ExecutionContext:
    """What the engine needs to run this run: where its code is and how to get it."""
    run = run_store.get_run(session, run_id)
    deployment = session.get(Deployment, run.deployment_id) if run.deployment_id else None
    return ExecutionContext(
        flow_run=run_store.run_out(session, run),
        entrypoint=deployment.entrypoint if deployment else None,
        path=deployment.path if deployment else None,
        pull_steps=deployment.pull_steps if deployment else [],
    )


@router.post("/flow_runs/{run_id}/state", response_model=StateDecision)
def set_flow_run_state(
    run_id: str,
    body: StateProposal,
    session: SessionDep,
    notifier: NotifierDep,
    idempotency_key: IdempotencyKey = None,
) -> StateDecision:
    if idempotency_key:
        run = run_store.lock_run(session, run_id)
        answer = receipts.find(session, run_id, idempotency_key, "state")
        if answer is not None:
            return StateDecision(
                accepted=answer["accepted"],
                reason=answer["reason"],
                flow_run=run_store.run_out(session, run),
            )
    run, decision = run_store.propose_state(session, run_id, body)
    if idempotency_key:
        receipts.record(
            session,
            run_id,
            idempotency_key,
            "state",
            {"accepted": decision.accepted, "reason": decision.reason},
        )
    out = run_store.run_out(session, run)
    session.commit()
    if decision.accepted and body.type in (StateType.SCHEDULED, StateType.CANCELLING):
        notifier.notify(run_wake_key(run.work_pool_id, run.deployment_id))
    return StateDecision(accepted=decision.accepted, reason=decision.reason, flow_run=out)


@router.post("/flow_runs/{run_id}/cancel", response_model=FlowRunOut)
def cancel_flow_run(run_id: str, session: SessionDep, notifier: NotifierDep) -> FlowRunOut:
    run = run_store.cancel_run(session, run_id)
    out = run_store.run_out(session, run)
    session.commit()
    notifier.notify(run_wake_key(run.work_pool_id, run.deployment_id))
    return out


@router.delete("/flow_runs/{run_id}", status_code=204)
def delete_flow_run(run_id: str, session: SessionDep) -> None:
    run_store.delete_run(session, run_id)


@router.post("/flow_runs/{run_id}/logs", status_code=201)
def add_flow_run_logs(
    run_id: str,
    body: Annotated[list[LogIn], ...],
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
    dropped: Annotated[
        int,
        Query(
            ge=0,
            le=2**40,
            description="Lines the client counted but did not send (a run over its quota).",
        ),
    ] = 0,
) -> dict[str, int]:
    """Store log lines. Lines over the maximum length are kept, truncated with a marker; lines
    over the run's quota are counted, and one line says how many were dropped. The answer
    counts the lines received and those dropped (these or older ones, to make room)."""
    if len(body) > 10_000:
        raise InvalidInput("send at most 10000 log lines per request")
    run_store.lock_run(session, run_id)
    if idempotency_key:
        answer = receipts.find(session, run_id, idempotency_key, "logs")
        if answer is not None:
            return answer
    added = log_store.add_logs(session, run_id, body, dropped_by_client=dropped)
    answer = {"count": added.count, "dropped": added.dropped}
    if idempotency_key:
        receipts.record(session, run_id, idempotency_key, "logs", answer)
    return answer


@router.get("/flow_runs/{run_id}/logs", response_model=list[LogOut])
def get_flow_run_logs(
    run_id: str,
    session: SessionDep,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="Only logs with an id above this.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    max_bytes: Annotated[
        int,
        Query(
            ge=1,
            le=log_store.MAX_PAGE_BYTES,
            description="A page ends before this many bytes of messages (it has at least "
            "one line); page on with `after` set to the last id received.",
        ),
    ] = log_store.DEFAULT_PAGE_BYTES,
) -> list[LogOut]:
    return run_store.get_logs(session, run_id, after=after, limit=limit, max_bytes=max_bytes)


class DeploymentPollRequest(PollRequest):
    deployment_ids: list[NoNulText]


def _claim_for_deployments(
    store: Store, body: DeploymentPollRequest
) -> tuple[PollResponse, float | None]:
    with store.session() as session:
        result = run_store.claim_runs(
            session,
            None,
            claimer=body.worker_name,
            limit=body.limit,
            deployment_ids=body.deployment_ids,
            prefetch=timedelta(seconds=body.prefetch_seconds),
        )
        outs = run_store.runs_out(session, result.runs)
        claimed = [
            ClaimedRun(flow_run=out, job_configuration={}, token=run_tokens.issue(session, run.id))
            for run, out in zip(result.runs, outs, strict=True)
        ]
        cancel = run_store.cancelling_among(session, body.running)
        wait_until = None
        if result.next_due is not None:
            wait_until = (result.next_due - utcnow()).total_seconds() - body.prefetch_seconds
        return PollResponse(runs=claimed, cancel=cancel), wait_until


@router.post("/flow_runs/poll", response_model=PollResponse)
async def poll_deployments(
    body: DeploymentPollRequest, store: StoreDep, notifier: NotifierDep
) -> PollResponse:
    """Claim runs of the given pool-less deployments (those a `flow.serve()` process runs)."""
    if len(body.deployment_ids) != 1:
        raise InvalidInput("poll exactly one served deployment per request")
    key = f"deployment:{body.deployment_ids[0]}"
    return await long_poll(
        notifier, key, lambda: _claim_for_deployments(store, body), body.wait_seconds
    )
