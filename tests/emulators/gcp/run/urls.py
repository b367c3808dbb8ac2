"""Cloud Run v2 REST routes (google-cloud-run's rest transport paths)."""

from __future__ import annotations

from tests.emulators.gcp.rest import Route, route
from tests.emulators.gcp.run.responses import RunResponses
from tests.emulators.gcp.state import GcpState

__all__ = ["routes"]

_LOC = r"/v2/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_JOB = _LOC + r"/jobs/(?P<job>[^/:]+)"
_EXECUTION = _JOB + r"/executions/(?P<execution>[^/:]+)"
_OPERATION = _LOC + r"/operations/(?P<operation>[^/:]+)"


def routes(state: GcpState) -> list[Route]:
    r = RunResponses(state)
    return [
        route("POST", _LOC + r"/jobs", r.create_job),
        route("GET", _LOC + r"/jobs", r.list_jobs),
        route("GET", _JOB, r.get_job),
        route("PATCH", _JOB, r.update_job),
        route("DELETE", _JOB, r.delete_job),
        route("POST", _JOB + r":run", r.run_job),
        route("GET", _JOB + r"/executions", r.list_executions),
        route("GET", _EXECUTION, r.get_execution),
        route("DELETE", _EXECUTION, r.delete_execution),
        route("POST", _EXECUTION + r":cancel", r.cancel_execution),
        route("GET", _EXECUTION + r"/tasks", r.list_tasks),
        route("GET", _EXECUTION + r"/tasks/(?P<task>[^/:]+)", r.get_task),
        route("GET", _OPERATION, r.get_operation),
        route("POST", _OPERATION + r":wait", r.wait_operation, mutating=False, locked=False),
    ]
