"""Deploying from Python: `deploy_flow(flow, "nightly", "my-pool")` and `from_source(...)`.

`Flow.deploy` and `Flow.from_source` are thin wrappers around these. The CLI builds its request
bodies with `build_deployment` too, so both paths check the same things before calling the API:
the entrypoint loads back to this flow's function, the parameters fit the flow's signature,
schedules parse, and the pull steps are known steps.
"""

from __future__ import annotations

import inspect
import shutil
import sys
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from push_pools.deploy.entrypoints import is_flow, load_flow, split_entrypoint
from push_pools.deploy.steps import PREFIX, execute_steps, parse_steps
from push_pools.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from push_pools.client import Client
    from push_pools.deploy.images import DeploymentImage
    from push_pools.flows import Flow
    from push_pools.models import DeploymentOut

_GIT_PREFIXES = ("https://", "http://", "git@", "file://", "ssh://", "git://")


@dataclass(frozen=True)
class Applied:
    """What the API returned for one deployment, and whether it was new."""

    deployment: dict[str, Any]
    created: bool


def deploy_flow(flow: Flow[Any, Any], name: str, *args: Any, **options: Any) -> dict[str, Any]:
    """Create or update the deployment `flow.name/name`; return it as the API shows it (see
    `apply_flow` for the arguments)."""
    return apply_flow(flow, name, *args, **options).deployment


def apply_flow(
    flow: Flow[Any, Any],
    name: str,
    work_pool_name: str | None = None,
    *,
    work_queue_name: str | None = None,
    job_variables: Mapping[str, Any] | None = None,
    cron: str | None = None,
    interval: float | str | timedelta | None = None,
    timezone: str | None = None,
    schedules: Sequence[Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    description: str | None = None,
    paused: bool = False,
    entrypoint: str | None = None,
    source_dir: str | Path | None = None,
    pull_steps: list[dict[str, Any]] | None = None,
    client: Client | None = None,
    bundle: bool | None = None,
    image: str | DeploymentImage | None = None,
    build: bool = True,
    push: bool = True,
) -> Applied:
    """Create or update the deployment `flow.name/name`; return the API's answer and whether
    it was new.

    With `image` (a name, or a DeploymentImage), the image is built from the project directory
    (`source_dir`, default the working directory) and pushed unless `build`/`push` say not,
    and runs use the pushed digest and the code inside it: no bundle, no pull step.

    Without `entrypoint`, it is derived from where the flow's function is defined, relative to
    `source_dir` (default: that file's directory). Without `pull_steps`, runs start by moving to
    `source_dir`, so the code must be readable at that path wherever the run executes; for
    a push, managed or docker pool (or with `bundle=True`) `source_dir` is uploaded as a code bundle
    instead, which runs download (`bundle=False`: never).
    """
    if image is not None:
        if bundle:
            raise InvalidInput("an image carries the code: give image= or bundle=True, not both")
        if not work_pool_name:
            raise InvalidInput("an image is for a work pool's runs: pass work_pool_name too")
        if source_dir is None and entrypoint is None:
            source_dir = image_project_dir(flow)
        # Runs start in the image's working directory, where the code is: no pull step.
        pull_steps = [] if pull_steps is None else pull_steps
    body = build_deployment(
        flow,
        name,
        work_pool_name,
        work_queue_name=work_queue_name,
        job_variables=job_variables,
        cron=cron,
        interval=interval,
        timezone=timezone,
        schedules=schedules,
        parameters=parameters,
        tags=tags,
        description=description,
        paused=paused,
        entrypoint=entrypoint,
        source_dir=source_dir,
        pull_steps=pull_steps,
    )
    if image is not None:
        project = Path(source_dir or Path.cwd()).expanduser().resolve()
        return _apply_image(body, project, image, client, build=build, push=push)
    if pull_steps is None:
        return _apply_bundled(body, Path(body["path"]), client, bundle)
    if bundle:
        raise InvalidInput("bundle=True replaces the default pull step: drop pull_steps")
    return apply_deployment(body, client)


def _apply_bundled(
    body: dict[str, Any], directory: Path, client: Client | None, bundle: bool | None
) -> Applied:
    """Apply a deployment whose runs would read `directory`, with that directory uploaded as a
    code bundle instead when wanted (push_pools/deploy/shipping.py)."""
    if bundle is False:
        return apply_deployment(body, client)
    from push_pools.client import Client
    from push_pools.deploy.shipping import bundle_body

    api = client or Client()
    try:
        body, _ = bundle_body(body, directory, api, bundle=bundle)
        return apply_deployment(body, api)
    finally:
        if client is None:
            api.close()


def image_project_dir(flow: Flow[Any, Any]) -> Path:
    """The build context of an image deploy: the working directory, as for `docker build .`,
    unless the flow's file is outside it (a deploy not run from the project root)."""
    cwd = Path.cwd().resolve()
    try:
        file = inspect.getsourcefile(flow.fn)
    except TypeError:
        file = None
    if file is None:
        return cwd
    path = Path(file).resolve()
    if path.is_relative_to(cwd):
        return cwd
    print(
        f"Warning: {path} is outside the working directory {cwd}, so the image built here "
        f"would not hold the flow; building from {path.parent} instead. Run deploy from the "
        "project root (or pass source_dir) so the whole project is in the image.",
        file=sys.stderr,
    )
    return path.parent


def _apply_image(
    body: dict[str, Any],
    project: Path,
    image: str | DeploymentImage,
    client: Client | None,
    *,
    build: bool,
    push: bool,
) -> Applied:
    """Build and push the image, then apply the deployment pinned to what was pushed; nothing
    reaches the server when the build or push fails."""
    from push_pools.client import Client
    from push_pools.deploy.images import check_pool_runs_images, ship_image

    api = client or Client()
    try:
        pool_name = body.get("work_pool_name")
        if pool_name:
            # Before the build: a misspelt pool should not cost a build.
            check_pool_runs_images(api, pool_name)
        shipped = ship_image(
            image,
            project,
            entrypoint=body["entrypoint"],
            build=build,
            push=push,
            api=api,
            pool_name=pool_name,
        )
        body = {
            **body,
            "path": None,
            "job_variables": {**body.get("job_variables", {}), "image": shipped.image},
        }
        return apply_deployment(body, api)
    finally:
        if client is None:
            api.close()


def build_deployment(
    flow: Flow[Any, Any],
    name: str,
    work_pool_name: str | None = None,
    *,
    work_queue_name: str | None = None,
    job_variables: Mapping[str, Any] | None = None,
    cron: str | None = None,
    interval: float | str | timedelta | None = None,
    timezone: str | None = None,
    schedules: Sequence[Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    description: str | None = None,
    paused: bool = False,
    entrypoint: str | None = None,
    source_dir: str | Path | None = None,
    pull_steps: list[dict[str, Any]] | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """The checked body of `Client.upsert_deployment` (see `deploy_flow` for the arguments).

    `path` is the code directory recorded for runs without pull steps; by default the source
    directory when the default pull step is used.
    """
    if not is_flow(flow):
        raise InvalidInput(
            f"{flow!r} is not a flow: decorate the function with @flow from push_pools"
        )
    if entrypoint is None:
        entrypoint, source = entrypoint_of(flow, source_dir)
    else:
        split_entrypoint(entrypoint)
        source = Path(source_dir or Path.cwd()).expanduser().resolve()
    if pull_steps is None:
        pull_steps = [{PREFIX + "set_working_directory": {"directory": str(source)}}]
        path = path or str(source)
    parse_steps(pull_steps, "pull")

    body: dict[str, Any] = {
        "name": name,
        "flow_name": flow.name,
        "entrypoint": entrypoint,
        "description": description if description is not None else flow.description,
        "work_pool_name": work_pool_name,
        "work_queue_name": work_queue_name,
        "path": path,
        "pull_steps": pull_steps,
        "parameters": check_parameters(flow, dict(parameters or {})),
        "parameter_schema": flow.parameter_schema(),
        "job_variables": dict(job_variables or {}),
        "schedules": schedule_bodies(cron, interval, timezone, schedules),
        "tags": list(tags or []),
        "paused": paused,
    }
    if work_queue_name and not work_pool_name:
        raise InvalidInput("a work queue was given without a work pool: pass work_pool_name too")
    if body["job_variables"] and not work_pool_name:
        raise InvalidInput("job variables need a work pool: pass work_pool_name too")
    _check_body(body)
    return body


def apply_deployment(body: dict[str, Any], client: Client | None = None) -> Applied:
    """Send a deployment body to the API (create or update by flow name and name)."""
    from push_pools.client import Client

    own = client is None
    api = client or Client()
    try:
        # The upsert answers the same either way; asking first lets us say created or updated.
        try:
            api.get_deployment_by_name(f"{body['flow_name']}/{body['name']}")
            existed = True
        except NotFound:
            existed = False
        deployment = api.upsert_deployment(body)
    finally:
        if own:
            api.close()
    return Applied(deployment=deployment, created=not existed)


def entrypoint_of(flow: Flow[Any, Any], source_dir: str | Path | None = None) -> tuple[str, Path]:
    """("rel/file.py:name", source directory) for a flow defined in a file."""
    fn = flow.fn
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        file = None
    if file is None or not Path(file).is_file():
        raise InvalidInput(
            f"cannot find the file that defines flow {flow.name!r} (was it defined in an "
            "interactive session?); save it in a .py file, or pass entrypoint='file.py:function'"
        )
    path = Path(file).resolve()
    source = Path(source_dir).expanduser().resolve() if source_dir else path.parent
    try:
        relative = path.relative_to(source)
    except ValueError:
        raise InvalidInput(
            f"flow {flow.name!r} is defined in {path}, which is outside source_dir {source}"
        ) from None
    return f"{relative.as_posix()}:{_attribute_name(flow)}", source


def _attribute_name(flow: Flow[Any, Any]) -> str:
    """The module-level name the flow is bound to, which is what loading the entrypoint needs."""
    fn = flow.fn
    if "<locals>" in getattr(fn, "__qualname__", ""):
        raise InvalidInput(
            f"flow {flow.name!r} is defined inside a function; define it at the top level of "
            "its module so a run can import it"
        )
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is not None:
        if getattr(module, fn.__name__, None) is flow:
            return fn.__name__
        # `etl_flow = flow(etl)`: the plain function keeps its own name, the flow another one.
        for attribute, value in vars(module).items():
            if value is flow:
                return attribute
    return fn.__name__


def check_parameters(flow: Flow[Any, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate against the flow's signature; return the parameters as given.

    The originals are sent rather than the coerced values, which may be objects (dates,
    models) that JSON cannot carry; the engine coerces them again at run time.
    """
    flow.validate_parameters(parameters)
    return parameters


def schedule_bodies(
    cron: str | None = None,
    interval: float | str | timedelta | None = None,
    timezone: str | None = None,
    schedules: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The API's schedule list from the cron/interval shorthand or explicit schedule dicts."""
    items: list[dict[str, Any]] = []
    if cron is not None or interval is not None:
        if cron is not None and interval is not None:
            raise InvalidInput("give either cron or interval, not both (or use schedules=[...])")
        items.append({"cron": cron, "interval": interval, "timezone": timezone, "active": True})
    elif timezone is not None:
        raise InvalidInput(
            "timezone applies to the cron or interval argument; give one of them, or put the "
            "timezone inside each of schedules=[...]"
        )
    for schedule in schedules or []:
        if not isinstance(schedule, Mapping):
            raise InvalidInput(f"each schedule must be a mapping, got {schedule!r}")
        items.append(dict(schedule))
    bodies = []
    for item in items:
        body = {k: v for k, v in item.items() if v is not None}
        if isinstance(body.get("interval"), timedelta):
            body["interval"] = body["interval"].total_seconds()
        if isinstance(body.get("anchor_date"), datetime):
            body["anchor_date"] = body["anchor_date"].isoformat()
        _check_schedule(body)
        bodies.append(body)
    return bodies


def _check_schedule(body: dict[str, Any]) -> None:
    # The server checks again; checking here fails before any build step or upload.
    try:
        from push_pools.schedules import parse_schedule
    except ImportError:  # pragma: no cover - only while the schedules module is missing
        return
    unknown = sorted(set(body) - {"cron", "interval", "timezone", "anchor_date", "active"})
    if unknown:
        raise InvalidInput(
            f"unknown schedule field(s) {', '.join(unknown)}; "
            "allowed: cron, interval, timezone, anchor_date, active"
        )
    parse_schedule(
        cron=body.get("cron"),
        interval=body.get("interval"),
        timezone=body.get("timezone"),
        anchor_date=body.get("anchor_date"),
    )


def _check_body(body: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from push_pools.deploy.project import format_errors
    from push_pools.models import DeploymentCreate

    try:
        DeploymentCreate.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(f"deployment {body['name']!r}: {format_errors(exc)}") from None


# --- from_source -------------------------------------------------------------------------------


def is_git_source(source: str | Path) -> bool:
    text = str(source)
    return text.endswith(".git") or text.startswith(_GIT_PREFIXES)


class FlowSource:
    """A flow loaded from a directory or a git repository, ready to `.deploy(...)`.

    For git, the repository is cloned to a temporary directory only to load the flow (so its
    parameter schema is known); runs clone it again with a git_clone pull step.
    """

    def __init__(self, source: str | Path, entrypoint: str, *, branch: str | None = None) -> None:
        split_entrypoint(entrypoint)
        self.source = str(source)
        self.entrypoint = entrypoint
        self.branch = branch
        self.path: str | None
        if is_git_source(source):
            scratch = Path(tempfile.mkdtemp(prefix="push-pools-source-"))
            # Removed when this object goes away (or at exit), not at once: the loaded module's
            # file must stay readable for inspect and lazy imports while the flow is in use.
            self._cleanup = weakref.finalize(self, shutil.rmtree, scratch, ignore_errors=True)
            options: dict[str, Any] = {"repository": self.source}
            if branch:
                options["branch"] = branch
            self.pull_steps: list[dict[str, Any]] = [{PREFIX + "git_clone": options}]
            self.directory = execute_steps(self.pull_steps, scratch, "source").directory
            self.path = None
        else:
            if branch:
                raise InvalidInput(f"branch={branch!r} only applies to git sources")
            directory = Path(source).expanduser().resolve()
            if not directory.is_dir():
                raise InvalidInput(
                    f"source {directory} is not a directory; give a local directory or a git "
                    "URL (https://..., git@..., file://... or ending in .git)"
                )
            self.directory = directory
            self.pull_steps = [{PREFIX + "set_working_directory": {"directory": str(directory)}}]
            self.path = str(directory)
        self.flow: Flow[Any, Any] = load_flow(entrypoint, self.directory)

    def __repr__(self) -> str:
        return f"FlowSource(source={self.source!r}, entrypoint={self.entrypoint!r})"

    def deploy(
        self,
        name: str,
        work_pool_name: str | None = None,
        *,
        work_queue_name: str | None = None,
        job_variables: Mapping[str, Any] | None = None,
        cron: str | None = None,
        interval: float | str | timedelta | None = None,
        timezone: str | None = None,
        schedules: Sequence[Mapping[str, Any]] | None = None,
        parameters: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        description: str | None = None,
        paused: bool = False,
        client: Client | None = None,
        quiet: bool = False,
        bundle: bool | None = None,
        image: str | DeploymentImage | None = None,
        build: bool = True,
        push: bool = True,
    ) -> DeploymentOut:
        """Create or update the deployment and print its summary (unless `quiet`), as
        `Flow.deploy` does; see `apply_flow` for the arguments. A local directory is uploaded
        as a code bundle for push, managed and docker pools (or with `bundle=True`), as there; with
        `image`, the source (a git source as cloned now) is built into it instead."""
        from push_pools.deploy.summary import print_summary
        from push_pools.models import DeploymentOut

        if image is not None and (bundle or not work_pool_name):
            raise InvalidInput(
                "an image carries the code for a work pool's runs: pass work_pool_name, and "
                "no bundle=True"
            )

        body = build_deployment(
            self.flow,
            name,
            work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=job_variables,
            cron=cron,
            interval=interval,
            timezone=timezone,
            schedules=schedules,
            parameters=parameters,
            tags=tags,
            description=description,
            paused=paused,
            entrypoint=self.entrypoint,
            source_dir=self.directory,
            pull_steps=[] if image is not None else self.pull_steps,
            path=None if image is not None else self.path,
        )
        if image is not None:
            applied = _apply_image(body, self.directory, image, client, build=build, push=push)
        elif self.path is None:
            if bundle:
                raise InvalidInput("bundle=True is for local directories; runs clone git sources")
            applied = apply_deployment(body, client)
        else:
            applied = _apply_bundled(body, self.directory, client, bundle)
        if not quiet:
            print_summary(applied.deployment, created=applied.created)
        return DeploymentOut.model_validate(applied.deployment)


def from_source(source: str | Path, entrypoint: str, *, branch: str | None = None) -> FlowSource:
    """Load the flow at `entrypoint` inside `source`, a local directory or a git repository."""
    return FlowSource(source, entrypoint, branch=branch)
