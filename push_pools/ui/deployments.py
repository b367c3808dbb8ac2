"""Deployment pages: the list with schedules in words and next runs, and running one with
parameters from a form made from its flow's parameter schema."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from push_pools.api import deployments as deployment_api
from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.errors import NotFound, PushPoolsError
from push_pools.models import DeploymentOut, DeploymentUpdate, RunCreate
from push_pools.store import pools as pool_store
from push_pools.ui import run_overrides
from push_pools.ui.forms import FormDep, field_errors

router = APIRouter(route_class=StoreRoute)


@router.get("/deployments")
def deployments_page(request: Request, session: SessionDep) -> HTMLResponse:
    from push_pools.ui.render import page

    return page(request, "deployments.html", deployments=deployment_api.list_deployments(session))


def parameter_fields(deployment: DeploymentOut) -> list[dict[str, Any]]:
    """One form field per parameter of the flow, its default the deployment's value."""
    schema = deployment.parameter_schema or {}
    required = set(schema.get("required", []))
    fields = []
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type") if isinstance(spec.get("type"), str) else "json"
        default = deployment.parameters.get(name, spec.get("default"))
        if kind not in ("string", "integer", "number", "boolean"):
            kind = "json"
            default = (
                json.dumps(default) if name in deployment.parameters or "default" in spec else ""
            )
        fields.append(
            {
                "name": name,
                "kind": kind,
                "title": spec.get("title", name),
                "default": default,
                "required": name in required and name not in deployment.parameters,
            }
        )
    return fields


def _override_fields(session: Session, deployment: DeploymentOut) -> list[dict[str, Any]]:
    """A field per job variable the deployment's pool lets a run set; none without a pool."""
    if not deployment.work_pool_name or deployment.work_pool_deleted:
        return []
    try:
        pool = pool_store.get_pool(session, deployment.work_pool_name)
    except NotFound:
        return []
    return run_overrides.override_fields(pool.base_job_template, deployment.job_variables)


def _run_form(
    request: Request,
    session: Session,
    deployment: DeploymentOut,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    return page(
        request,
        "deployment_run.html",
        status=status,
        deployment=deployment,
        fields=parameter_fields(deployment),
        overrides=_override_fields(session, deployment),
        overrides_open=run_overrides.given(values, errors),
        values=values,
        errors=errors,
    )


@router.get("/deployments/{deployment_id}/run")
def run_page(request: Request, deployment_id: str, session: SessionDep) -> HTMLResponse:
    deployment = deployment_api.get_deployment(deployment_id, session)
    return _run_form(request, session, deployment, {}, {})


def _parameters(
    fields: list[dict[str, Any]], form: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for field in fields:
        key = f"param.{field['name']}"
        raw = form.get(key)
        kind = field["kind"]
        if kind == "boolean":
            parameters[field["name"]] = raw in ("on", "true")
            continue
        if raw is None or raw == "":
            continue  # left out: the deployment's value or the flow's default applies
        try:
            if kind == "integer":
                parameters[field["name"]] = int(raw)
            elif kind == "number":
                parameters[field["name"]] = float(raw)
            elif kind == "json":
                parameters[field["name"]] = json.loads(raw)
            else:
                parameters[field["name"]] = raw
        except ValueError:
            words = {"integer": "a whole number", "number": "a number", "json": "valid JSON"}
            errors[key] = f"{raw!r} is not {words[kind]}"
    return parameters


@router.post("/deployments/{deployment_id}/run", response_model=None)
def run_deployment(
    request: Request,
    deployment_id: str,
    form: FormDep,
    session: SessionDep,
    notifier: NotifierDep,
) -> Response:
    deployment = deployment_api.get_deployment(deployment_id, session)
    fields = parameter_fields(deployment)
    overrides = _override_fields(session, deployment)
    errors: dict[str, str] = {}
    parameters = _parameters(fields, form, errors)
    job_variables = run_overrides.overrides_from_form(overrides, form, errors)
    if errors:
        return _run_form(request, session, deployment, form, errors, status=422)
    try:
        body = RunCreate(parameters=parameters, job_variables=job_variables)
        run = deployment_api.create_run(deployment_id, body, session, notifier)
    except ValidationError as exc:
        session.rollback()
        return _run_form(request, session, deployment, form, field_errors(exc), status=422)
    except PushPoolsError as exc:
        session.rollback()
        where = _beside(exc.message, fields, overrides, form)
        return _run_form(
            request, session, deployment, form, {where: exc.message}, status=exc.status_code
        )
    return RedirectResponse(f"/flow-runs/{run.id}", status_code=303)


def _beside(
    message: str,
    fields: list[dict[str, Any]],
    overrides: list[dict[str, Any]],
    form: dict[str, str],
) -> str:
    """The field the server's message is about: a parameter it names, a job variable's
    override, else the form as a whole."""
    if "job variable" in message or "job_variables" in message:
        return run_overrides.beside(message, overrides, form)
    for field in fields:
        if f"'{field['name']}'" in message or f"{field['name']}:" in message:
            return f"param.{field['name']}"
    return ""


@router.post("/deployments/{deployment_id}/pause", response_model=None)
def pause_deployment(
    deployment_id: str, form: FormDep, session: SessionDep, notifier: NotifierDep
) -> Response:
    paused = form.get("paused", "true") == "true"
    deployment_api.update_deployment(
        deployment_id, DeploymentUpdate(paused=paused), session, notifier
    )
    return RedirectResponse("/deployments", status_code=303)
