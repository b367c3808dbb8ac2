"""push-pools.yaml: the project file that declares deployments, as prefect.yaml does for Prefect.

    name: my-project
    build: []                  # steps run once before deploying (e.g. build an image)
    push: []                   # steps run after build (e.g. push it)
    pull:                      # steps every flow run starts with; default: this directory
      - git_clone: {repository: https://github.com/org/repo.git}
    deployments:
      - name: nightly
        entrypoint: flows/etl.py:etl
        work_pool: {name: my-pool, work_queue_name: default, job_variables: {cpu: 1024}}
        parameters: {day: yesterday}
        schedules: [{cron: "0 3 * * *", timezone: Europe/Paris}]

Keys that only Prefect's file has (`prefect-version`, `definitions`, a deployment's `version`,
`schedule`, `enforce_parameter_schema`) are accepted, so a prefect.yaml loads as it is; any other
unknown key is an error, because a misspelt `shedules` would otherwise silently do nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from push_pools.errors import InvalidInput

DEFAULT_FILE = "push-pools.yaml"
PREFECT_FILE = "prefect.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleSpec(_Model):
    cron: str | None = None
    # Seconds, or a duration such as "15m" or "1h30m"; the server parses and checks it.
    interval: float | str | None = None
    timezone: str | None = None
    anchor_date: datetime | str | None = None
    active: bool = True

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule needs exactly one of cron or interval")
        return self

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"active": self.active}
        for key in ("cron", "interval", "timezone", "anchor_date"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value.isoformat() if isinstance(value, datetime) else value
        return body


class WorkPoolSpec(_Model):
    name: str
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)


class DeploymentSpec(_Model):
    name: str
    entrypoint: str | None = None
    description: str | None = None
    # Only a check: the flow's own name (from @flow) is what the deployment is filed under.
    flow_name: str | None = None
    work_pool: WorkPoolSpec | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    paused: bool = False
    # Per-deployment steps replace the project's, as in prefect.yaml.
    build: list[dict[str, Any]] | None = None
    push: list[dict[str, Any]] | None = None
    pull: list[dict[str, Any]] | None = None
    # Prefect-only keys, accepted so a prefect.yaml loads: `schedule` is the older single form.
    schedule: ScheduleSpec | None = None
    version: str | int | float | None = None
    enforce_parameter_schema: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_schedule(cls, data: Any) -> Any:
        # prefect.yaml templates write `schedule: {}` or `schedule: null` for "no schedule".
        if isinstance(data, dict) and data.get("schedule") in ({}, None):
            data = {k: v for k, v in data.items() if k != "schedule"}
        return data

    def all_schedules(self) -> list[ScheduleSpec]:
        return [*self.schedules, *([self.schedule] if self.schedule else [])]


class ProjectFile(_Model):
    name: str | None = None
    build: list[dict[str, Any]] | None = None
    push: list[dict[str, Any]] | None = None
    pull: list[dict[str, Any]] | None = None
    deployments: list[DeploymentSpec] = Field(default_factory=list)
    # Prefect-only top-level keys: its version pin, and a home for YAML anchors.
    prefect_version: Any = Field(default=None, alias="prefect-version")
    definitions: Any = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # Where the file was read from; entrypoints and default pull steps are relative to it.
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def directory(self) -> Path:
        return (self._path.parent if self._path else Path.cwd()).resolve()

    def find(self, name: str) -> list[DeploymentSpec]:
        return [d for d in self.deployments if d.name == name]


def load_project(path: Path) -> ProjectFile:
    """Read and check a project file; InvalidInput naming the line or the field that is wrong."""
    import yaml

    if not path.is_file():
        raise InvalidInput(
            f"project file {path} does not exist; create it, or pass the entrypoint and options "
            "on the command line (`push-pools deploy path/file.py:flow -n NAME -p POOL`)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise InvalidInput(f"{path.name}: invalid YAML{_describe_yaml_error(exc)}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path.name}: invalid YAML: {exc}") from exc
    if data is None:
        raise InvalidInput(f"{path.name} is empty; it needs at least a `deployments:` list")
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{path.name} must be a mapping with keys such as `deployments:`, "
            f"not a {type(data).__name__}"
        )
    try:
        project = ProjectFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{path.name}: {format_errors(exc)}") from None
    project._path = path.resolve()
    return project


def _describe_yaml_error(exc: Any) -> str:
    """ " at line 5, column 1: expected ',' or ']' (while parsing a flow sequence from line 3)"."""
    mark = exc.problem_mark or exc.context_mark
    text = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    text += f": {exc.problem or exc.context or 'syntax error'}"
    if exc.problem and exc.context:
        start = exc.context_mark
        since = f" from line {start.line + 1}" if start and start is not mark else ""
        text += f" ({exc.context}{since})"
    return text


def format_errors(exc: ValidationError) -> str:
    """ "deployments[1].work_pool.name: field required; ..." from pydantic's errors."""
    messages = []
    for error in exc.errors():
        location = _location(error["loc"])
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(error["loc"][:-1])
            message = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif error["type"] == "missing":
            message = "field required"
        else:
            message = error["msg"].removeprefix("Value error, ")
            message = message[:1].lower() + message[1:]
        messages.append(f"{location}: {message}" if location else message)
    return "; ".join(messages)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not text:
            text = part
        else:
            text += f".{part}"
    return text


def _allowed_keys(parent: tuple[int | str, ...]) -> list[str]:
    """The field names of the model at `parent`, to list next to an unknown key."""
    model: type[BaseModel] | None = ProjectFile
    for part in parent:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(str(part))
        model = _model_in(info.annotation) if info else None
    if model is None:
        return []
    return [
        info.alias or name
        for name, info in model.model_fields.items()
        if name not in _HIDDEN_FIELDS
    ]


# Accepted for Prefect compatibility but not advertised in "allowed:" lists.
_HIDDEN_FIELDS = frozenset(
    {"prefect_version", "definitions", "version", "enforce_parameter_schema", "schedule"}
)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def dump_deployment(spec: DeploymentSpec) -> dict[str, Any]:
    """A deployment as it reads best in YAML: only the keys that were set, in a natural order."""
    fields = spec.model_dump(mode="json", exclude_defaults=True, exclude={"schedule", "version"})
    return {"name": spec.name, **fields}


def save_deployment(path: Path, spec: DeploymentSpec) -> None:
    """Add the deployment to the project file (replacing one of the same name), creating it.

    Rewriting the file drops YAML comments; the CLI says so before it asks.
    """
    import yaml

    data: dict[str, Any] = {}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is not None:
            if not isinstance(loaded, dict):
                raise InvalidInput(f"{path.name} is not a mapping; fix it before saving into it")
            data = loaded
    deployments = data.get("deployments") or []
    deployments = [
        d for d in deployments if not (isinstance(d, dict) and d.get("name") == spec.name)
    ]
    deployments.append(dump_deployment(spec))
    data["deployments"] = deployments
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
