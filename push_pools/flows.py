"""The `@flow` decorator: turns a plain function into a push-pools flow.

A `Flow` is still callable like the function it wraps; calling it runs it locally with the same
policy (parameter validation, retries, timeout, print capture) that the engine applies when a run
is pushed to a worker. Deployment methods (`serve`, `deploy`, `from_source`) live on the same
class, added by the deployment code; see the extension point in `Flow`.

Only the standard library is imported here at module level: `from push_pools import flow` runs in
every user script and in CLI start-up, so pydantic (about 100 ms to import) is loaded only when a
parameter model is first needed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import re
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from push_pools.errors import InvalidInput, PushPoolsError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from push_pools.models import DeploymentOut

__all__ = ["Flow", "FlowTimeout", "flow", "is_flow"]

P = ParamSpec("P")
R = TypeVar("R")

# Where printed lines go when log_prints is on and the caller gave no sink (i.e. local runs).
FLOW_RUN_LOGGER = "push_pools.flow_run"

_log = logging.getLogger(FLOW_RUN_LOGGER)


_PLAIN_TYPES = (str, int, float, bool)
_PLAIN_TYPES_BY_NAME = {t.__name__: t for t in _PLAIN_TYPES}


class FlowTimeout(PushPoolsError):
    """An attempt of a flow ran longer than its `timeout_seconds`."""


class Flow(Generic[P, R]):
    """A function plus the policy it runs under. Create one with `@flow`.

    `Flow(fn, ...)` validates its options like `@flow(...)` does, so subclasses and `with_options`
    cannot build a flow with, say, negative retries.
    """

    # Lets code recognise a flow without importing this module or relying on class identity
    # (a script loaded twice from source defines a second `Flow`-wrapped object per import).
    __push_pools_flow__ = True

    fn: Callable[P, R]
    name: str
    description: str | None
    log_prints: bool
    retries: int
    retry_delay_seconds: float
    timeout_seconds: float | None

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        log_prints: bool = False,
        retries: int = 0,
        retry_delay_seconds: float = 0,
        timeout_seconds: float | None = None,
    ) -> None:
        if is_flow(fn):
            raise InvalidInput(
                f"{fn!r} is already a flow; use .with_options(...) to change its options"
            )
        if isinstance(fn, str):
            # The common slip is @flow("my-name") instead of @flow(name="my-name").
            raise InvalidInput(f"@flow got the string {fn!r}; pass the name as @flow(name=...)")
        if not callable(fn):
            raise InvalidInput(f"@flow needs a function, got {type(fn).__name__}")
        # First, so that attributes copied from fn.__dict__ cannot shadow the flow's own.
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = _check_name(name, fn)
        self.description = _check_description(description, fn)
        self.log_prints = _check_bool("log_prints", log_prints)
        self.retries = _check_retries(retries)
        self.retry_delay_seconds = _check_delay(retry_delay_seconds)
        self.timeout_seconds = _check_timeout(timeout_seconds)
        try:
            self._signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:  # e.g. some builtins have no introspectable one
            raise InvalidInput(f"cannot read the parameters of {fn!r}: {exc}") from None
        self._parameter_model: type[BaseModel] | None = None

    def __repr__(self) -> str:
        target = f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"
        return f"Flow(name={self.name!r}, fn={target})"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow here and now, with validation, retries and timeout; return its result."""
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"flow {self.name!r}: {exc}") from None
        parameters = self.validate_parameters(dict(bound.arguments))
        return self.run_with_policy(parameters)

    # --- parameters -----------------------------------------------------------------------

    def parameter_schema(self) -> dict[str, Any]:
        """JSON schema of the parameters: an object with `properties` and `required`.

        Built by pydantic from the type hints; untyped parameters accept anything, and a default
        appears only when it can be written as JSON. `*args` shows up as an array and `**kwargs`
        as an object, under their own names, matching what `validate_parameters` accepts.
        """
        schema = self._model().model_json_schema(
            by_alias=True, schema_generator=_schema_generator()
        )
        # Always present so consumers need not special-case flows without required parameters.
        schema.setdefault("required", [])
        return schema

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce `parameters` (keyed by parameter name) against the type hints.

        Returns only the parameters that were given, converted (e.g. "3" -> 3 for an `int`);
        defaults are left for the function itself to apply. Raises `InvalidInput` for unknown or
        missing parameters and for values of the wrong type, naming each offending parameter.
        """
        self._check_parameter_names(parameters)
        if self._already_valid(parameters):
            return dict(parameters)
        model = self._model()
        from pydantic import ValidationError

        try:
            validated = model.model_validate(parameters)
        except ValidationError as exc:
            problems = "; ".join(_describe_error(error) for error in exc.errors())
            raise InvalidInput(f"flow {self.name!r}: {problems}") from None
        # Attributes rather than model_dump(): nested models must reach the function as models.
        aliases = {field: info.alias or field for field, info in model.model_fields.items()}
        return {
            aliases[field]: getattr(validated, field)
            for field in model.model_fields
            if field in validated.model_fields_set
        }

    def _already_valid(self, parameters: dict[str, Any]) -> bool:
        """True when every value already has its plain annotated type (str, int, ...).

        Building the pydantic model costs more than a run of a small flow; values that arrive
        from the API are usually of the exact type already, so they skip it.
        """
        hints = getattr(self.fn, "__annotations__", {})
        for name, value in parameters.items():
            hint = hints.get(name, inspect.Parameter.empty)
            if isinstance(hint, str):
                hint = _PLAIN_TYPES_BY_NAME.get(hint)
            if hint not in _PLAIN_TYPES or type(value) is not hint:
                return False
        return True

    def _check_parameter_names(self, parameters: dict[str, Any]) -> None:
        # Checked by hand before pydantic so the messages can list what the flow does accept.
        if not isinstance(parameters, dict):
            raise InvalidInput(
                f"flow {self.name!r}: parameters must be a mapping of name to value, "
                f"got {type(parameters).__name__}"
            )
        accepted = list(self._signature.parameters)
        unknown = [key for key in parameters if key not in self._signature.parameters]
        if unknown:
            names = ", ".join(repr(key) for key in unknown)
            plural = "s" if len(unknown) > 1 else ""
            accepts = ", ".join(accepted) if accepted else "no parameters"
            raise InvalidInput(
                f"flow {self.name!r} got unknown parameter{plural} {names}; it accepts: {accepts}"
            )
        missing = [
            param.name
            for param in self._signature.parameters.values()
            if param.default is inspect.Parameter.empty
            and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
            and param.name not in parameters
        ]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            plural = "s" if len(missing) > 1 else ""
            raise InvalidInput(f"flow {self.name!r} is missing required parameter{plural} {names}")

    def _model(self) -> type[BaseModel]:
        # Built on first use, not at decoration: decorating must stay cheap and pydantic-free.
        if self._parameter_model is None:
            self._parameter_model = _build_parameter_model(self.fn, self._signature)
        return self._parameter_model

    # --- running --------------------------------------------------------------------------

    def run_with_policy(
        self,
        parameters: dict[str, Any],
        on_retry: Callable[[int, BaseException], None] | None = None,
        print_sink: Callable[[str], None] | None = None,
    ) -> R:
        """Call the function with `parameters` under this flow's retries, timeout and log_prints.

        `parameters` are keyed by parameter name, as returned by `validate_parameters` (they are
        not re-validated here, only checked to fit the signature). `*args` is passed as a list
        and `**kwargs` as a dict under their own names.

        Each attempt that raises an `Exception` (including `FlowTimeout`) is retried while retries
        remain: `on_retry(n, exc)` is called with the 1-based number of the attempt that just
        failed, then `retry_delay_seconds` is slept. An exception raised by `on_retry` aborts the
        run. When retries are exhausted the last exception is re-raised unchanged.
        `BaseException`s such as `KeyboardInterrupt` are never retried.

        With `timeout_seconds`, each attempt runs in a daemon worker thread and is abandoned when
        the time is up: Python cannot kill a thread, so the abandoned attempt keeps running in
        the background until it returns on its own, possibly alongside the next attempt. The
        engine runs each flow run in its own process, which exits once the run is finished, so
        this only lingers for local calls. Without a timeout the function runs in the calling
        thread.

        With `log_prints`, text printed while the flow runs still reaches stdout and each line is
        also passed to `print_sink` (default: the "push_pools.flow_run" logger at INFO).
        """
        self._check_parameter_names(parameters)
        bound = inspect.BoundArguments(self._signature, dict(parameters))  # type: ignore[arg-type]
        bound.apply_defaults()
        args, kwargs = bound.args, bound.kwargs

        capture: contextlib.AbstractContextManager[_PrintTee | None]
        if self.log_prints:
            capture = _capture_prints(print_sink or _log.info)
        else:
            capture = contextlib.nullcontext()
        attempts = self.retries + 1
        with capture as tee:
            for attempt in range(1, attempts + 1):
                try:
                    return self._run_attempt(args, kwargs, tee)
                except Exception as exc:
                    if attempt == attempts:
                        raise
                    if on_retry is not None:
                        on_retry(attempt, exc)
                    else:
                        # Local runs have no engine to report the retry; say why it is waiting.
                        _log.warning(
                            "flow %r attempt %d of %d failed (%s: %s); retrying in %gs",
                            self.name,
                            attempt,
                            attempts,
                            type(exc).__name__,
                            exc,
                            self.retry_delay_seconds,
                        )
                    if self.retry_delay_seconds:
                        time.sleep(self.retry_delay_seconds)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _run_attempt(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], tee: _PrintTee | None
    ) -> R:
        def attempt() -> R:
            # Registered from the thread that actually runs the function, so its prints are
            # routed to this run even when other flows print concurrently.
            with tee.claim_current_thread() if tee is not None else contextlib.nullcontext():
                result: Any = self.fn(*args, **kwargs)
                if inspect.iscoroutine(result):
                    import asyncio

                    result = asyncio.run(result)
                return result

        timeout = self.timeout_seconds
        needs_thread = timeout is not None or (_is_async(self.fn) and _loop_running())
        if not needs_thread:
            return attempt()
        outcome = _run_in_thread(attempt, timeout, thread_name=f"push-pools-flow-{self.name}")
        if outcome is None:
            raise FlowTimeout(f"flow {self.name!r} exceeded its timeout of {timeout:g}s")
        return outcome.result()

    # --- options --------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The decorator options of this flow, as keyword arguments for `Flow`/`@flow`."""
        return {
            "name": self.name,
            "description": self.description,
            "log_prints": self.log_prints,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "timeout_seconds": self.timeout_seconds,
        }

    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed; the original is left as it was."""
        options = self.options()
        unknown = sorted(set(changes) - set(options))
        if unknown:
            raise InvalidInput(
                f"unknown flow option(s) {', '.join(unknown)}; "
                f"valid options are: {', '.join(options)}"
            )
        options.update(changes)
        # type(self) so subclasses survive a with_options() round trip.
        return type(self)(self.fn, **options)

    # --- deployment --------------------------------------------------------------------------
    # Thin doors into push_pools.deploy, imported on use so that `@flow` stays import-cheap.

    def deploy(self, name: str, work_pool_name: str | None = None, **options: Any) -> DeploymentOut:
        """Create or update the deployment 'flow-name/name' on the API, print what the CLI's
        `deploy` prints (pool, schedules, next runs), and return the deployment.

        Options: work_queue_name, job_variables, cron, interval, timezone, schedules,
        parameters, tags, description, paused, entrypoint, source_dir, pull_steps, bundle
        (upload source_dir as a code bundle: default for push, managed and docker pools), image
        ("repo/name:tag" or a DeploymentImage: build and push it, and runs use its digest),
        build and push (False skips that part of the image), quiet (print nothing).
        """
        from push_pools.deploy.sdk import apply_flow
        from push_pools.deploy.summary import print_summary
        from push_pools.models import DeploymentOut

        quiet = bool(options.pop("quiet", False))
        applied = apply_flow(self, name, work_pool_name, **options)
        if not quiet:
            print_summary(applied.deployment, created=applied.created)
        return DeploymentOut.model_validate(applied.deployment)

    def serve(
        self,
        name: str,
        *,
        cron: str | None = None,
        interval: float | str | None = None,
        timezone: str | None = None,
        parameters: dict[str, Any] | None = None,
        limit: int = 4,
        **options: Any,
    ) -> None:
        """Deploy without a work pool and run its scheduled and manual runs from this process.

        Blocks until interrupted (Ctrl-C or SIGTERM), then waits for running runs to finish.
        """
        from push_pools.deploy.serve import serve_flow

        serve_flow(
            self,
            name,
            cron=cron,
            interval=interval,
            timezone=timezone,
            parameters=parameters,
            limit=limit,
            **options,
        )

    @staticmethod
    def from_source(source: str, entrypoint: str, **options: Any) -> Any:
        """The flow at `entrypoint` in a local directory or git repository, to `.deploy()`."""
        from push_pools.deploy.sdk import from_source

        return from_source(source, entrypoint, **options)


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    log_prints: bool = False,
    retries: int = 0,
    retry_delay_seconds: float = 0,
    timeout_seconds: float | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    log_prints: bool = False,
    retries: int = 0,
    retry_delay_seconds: float = 0,
    timeout_seconds: float | None = None,
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Make a function a flow. Use as `@flow` or `@flow(name=..., retries=..., ...)`.

    Options are checked when the decorator is applied, so a bad option fails at import time of
    the user's module rather than when the flow first runs.
    """
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "log_prints": log_prints,
        "retries": retries,
        "retry_delay_seconds": retry_delay_seconds,
        "timeout_seconds": timeout_seconds,
    }
    if fn is not None:
        return Flow(fn, **options)
    # Checked now rather than in the returned decorator, so the error points at @flow(...).
    _check_bool("log_prints", log_prints)
    _check_retries(retries)
    _check_delay(retry_delay_seconds)
    _check_timeout(timeout_seconds)

    def decorator(fn: Callable[P, R]) -> Flow[P, R]:
        return Flow(fn, **options)

    return decorator


# `flow.from_source(...)`, as Prefect users write it: the decorator carries the classmethod-like
# door too, so the README's spelling and Flow.from_source are the same call.
flow.from_source = Flow.from_source  # type: ignore[attr-defined]


def is_flow(obj: object) -> bool:
    """Whether `obj` is a flow object (made by `@flow`), not just the class or a function."""
    return getattr(obj, "__push_pools_flow__", False) is True and not isinstance(obj, type)


# --- option checks ----------------------------------------------------------------------------


def _check_name(name: str | None, fn: Callable[..., Any]) -> str:
    if name is None:
        fn_name = getattr(fn, "__name__", None)
        if not isinstance(fn_name, str) or fn_name == "<lambda>":
            raise InvalidInput(f"cannot derive a flow name from {fn!r}; pass @flow(name=...)")
        # Dashes: flow names end up in URLs and CLI arguments, where they read better.
        name = fn_name.replace("_", "-")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"flow name must be a non-empty string, got {name!r}")
    if "/" in name:
        # "/" separates flow and deployment names in references like "my-flow/nightly".
        raise InvalidInput(f"flow name {name!r} must not contain '/'")
    return name


def _check_description(description: str | None, fn: Callable[..., Any]) -> str | None:
    if description is not None:
        if not isinstance(description, str):
            raise InvalidInput(f"description must be a string, got {type(description).__name__}")
        return description
    doc = inspect.getdoc(fn)
    if not doc:
        return None
    first_paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    return " ".join(first_paragraph.split())


def _check_bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{option} must be True or False, got {value!r}")
    return value


def _is_number(value: object) -> bool:
    # bool is an int subclass, but retries=True is surely a mistake.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_retries(retries: object) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise InvalidInput(f"retries must be a whole number >= 0, got {retries!r}")
    return retries


def _check_delay(delay: object) -> float:
    if not _is_number(delay) or not delay >= 0:  # type: ignore[operator]
        raise InvalidInput(f"retry_delay_seconds must be a number >= 0, got {delay!r}")
    return delay  # type: ignore[return-value]


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if not _is_number(timeout) or not timeout > 0:  # type: ignore[operator]
        raise InvalidInput(f"timeout_seconds must be a number > 0 or None, got {timeout!r}")
    return timeout  # type: ignore[return-value]


# --- parameter model --------------------------------------------------------------------------


def _type_hints(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Resolved annotations by parameter name; unresolvable ones become Any."""
    # One bad forward reference (e.g. a name imported under TYPE_CHECKING) should cost only
    # that parameter its type check, not make the whole flow unusable.
    with contextlib.suppress(Exception):
        return typing.get_type_hints(fn, include_extras=True)
    hints: dict[str, Any] = {}
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    for param in signature.parameters.values():
        annotation = param.annotation
        if isinstance(annotation, str):
            try:
                # Evaluating the user's own annotation text, as typing.get_type_hints does: it
                # comes from the flow's source, which this process has already executed.
                annotation = eval(annotation, namespace)  # nosec B307
            except Exception:
                annotation = Any
        hints[param.name] = annotation
    return hints


def _build_parameter_model(fn: Callable[..., Any], signature: inspect.Signature) -> type[BaseModel]:
    from pydantic import ConfigDict, Field, create_model

    hints = _type_hints(fn, signature)
    fields: dict[str, Any] = {}
    for index, param in enumerate(signature.parameters.values()):
        annotation = hints.get(param.name, Any)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        # Titled with the real name, which is what a form built from the schema should show.
        field_options: dict[str, Any] = {"alias": param.name, "title": param.name}
        if param.kind is param.VAR_POSITIONAL:
            annotation = list[annotation]  # type: ignore[valid-type]
            field = Field(default_factory=list, **field_options)
        elif param.kind is param.VAR_KEYWORD:
            annotation = dict[str, annotation]  # type: ignore[valid-type]
            field = Field(default_factory=dict, **field_options)
        elif param.default is inspect.Parameter.empty:
            field = Field(..., **field_options)
        else:
            field = Field(param.default, **field_options)
        # Internal field names, real names as aliases: parameter names such as "json", "schema",
        # "model_x" or "_private" would otherwise clash with BaseModel or be dropped by pydantic.
        fields[f"p{index}"] = (annotation, field)
    config = ConfigDict(
        # Types pydantic does not know are checked with isinstance and left out of the schema.
        arbitrary_types_allowed=True,
        # Makes the schema say additionalProperties: false, as validate_parameters enforces.
        extra="forbid",
    )
    return create_model("Parameters", __config__=config, **fields)


@functools.cache
def _schema_generator() -> type[Any]:
    from pydantic.json_schema import GenerateJsonSchema

    class _LenientJsonSchema(GenerateJsonSchema):
        """Leaves out what JSON cannot express instead of failing or warning."""

        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
            # Arbitrary classes, callables...: no constraint in the schema; isinstance still
            # applies when a run's parameters are validated.
            return {}

        def emit_warning(self, kind: Any, detail: str) -> None:
            # A default that is not JSON-serialisable is simply omitted from the schema.
            if kind == "non-serializable-default":
                return
            super().emit_warning(kind, detail)

    return _LenientJsonSchema


# What the value should have been, for the error types users hit most; others fall back to
# pydantic's own wording.
_EXPECTED = {
    "int_parsing": "integer",
    "int_type": "integer",
    "int_from_float": "integer",
    "float_parsing": "number",
    "float_type": "number",
    "bool_parsing": "boolean",
    "bool_type": "boolean",
    "string_type": "string",
    "list_type": "list",
    "tuple_type": "list",
    "set_type": "list",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "date_parsing": "date",
    "date_from_datetime_parsing": "date",
    "datetime_parsing": "datetime",
    "datetime_from_date_parsing": "datetime",
    "uuid_parsing": "UUID",
    "uuid_type": "UUID",
}


def _describe_error(error: Any) -> str:
    """One pydantic error as "parameter 'n': expected integer, got 'abc'"."""
    where = ""
    for part in error["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where += f".{part}" if where else str(part)
    kind = error["type"]
    if kind == "missing":
        return f"parameter {where!r}: required field is missing"
    if kind in _EXPECTED:
        problem = f"expected {_EXPECTED[kind]}"
    else:
        message = error["msg"]
        if message.startswith("Input should be "):
            problem = "expected " + message.removeprefix("Input should be ")
        else:
            problem = message[:1].lower() + message[1:]
    given = repr(error.get("input"))
    if len(given) > 80:
        given = given[:77] + "..."
    return f"parameter {where!r}: {problem}, got {given}"


# --- running helpers --------------------------------------------------------------------------


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(inspect.unwrap(fn))


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Outcome:
    """What an attempt in a worker thread produced: a value or an exception."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _run_in_thread(
    call: Callable[[], Any], timeout: float | None, *, thread_name: str
) -> _Outcome | None:
    """Run `call` in a daemon thread; None if it did not finish within `timeout` seconds."""
    outcomes: list[_Outcome] = []
    done = threading.Event()
    # Context variables are per thread; copying keeps the caller's (e.g. the engine's run
    # context) visible to the flow.
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcomes.append(_Outcome(value=context.run(call)))
        except BaseException as exc:  # handed to the caller, which decides what to raise
            outcomes.append(_Outcome(error=exc))
        finally:
            done.set()

    # Daemon: an abandoned attempt must not keep the interpreter from exiting.
    thread = threading.Thread(target=target, name=thread_name, daemon=True)
    thread.start()
    if not done.wait(timeout):
        return None
    return outcomes[0]


# --- print capture ----------------------------------------------------------------------------

# Which tees have claimed each thread (innermost last), so a line printed by a thread running a
# flow goes to that flow's sink only, while lines from threads no flow claimed (e.g. threads the
# flow started itself) go to every active flow's sink.
_claims: dict[int, list[_PrintTee]] = {}
_claims_lock = threading.Lock()
# Set while a sink runs: a sink that prints (or logs to stdout) must not feed itself.
_delivering = threading.local()
_stdout_lock = threading.Lock()


class _PrintTee:
    """Stands in for sys.stdout: writes through to the real stream and copies lines to a sink."""

    def __init__(self, wrapped: Any, sink: Callable[[str], None]) -> None:
        self.wrapped = wrapped
        self.active = True
        self._sink = sink
        self._partial: dict[int, str] = {}  # unfinished line per thread, print(..., end="")
        self._lock = threading.Lock()
        self._sink_failed = False

    def write(self, text: str) -> int:
        self.wrapped.write(text)
        if self.active and text and self._captures_current_thread():
            thread = threading.get_ident()
            with self._lock:
                lines = (self._partial.pop(thread, "") + text).split("\n")
                rest = lines.pop()
                if rest:
                    self._partial[thread] = rest
            for line in lines:
                self._deliver(line.removesuffix("\r"))
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        # Everything else (encoding, isatty, fileno, buffer...) behaves like the real stream.
        return getattr(self.wrapped, name)

    def _captures_current_thread(self) -> bool:
        if getattr(_delivering, "active", False):
            return False
        with _claims_lock:
            claimants = _claims.get(threading.get_ident())
        return not claimants or claimants[-1] is self

    def _deliver(self, line: str) -> None:
        _delivering.active = True
        try:
            self._sink(line)
        except Exception:
            # A broken log pipe must not fail the user's flow; say so once, then carry on.
            if not self._sink_failed:
                self._sink_failed = True
                _log.warning("could not pass printed output to the flow run log", exc_info=True)
        finally:
            _delivering.active = False

    @contextlib.contextmanager
    def claim_current_thread(self) -> Iterator[None]:
        thread = threading.get_ident()
        with _claims_lock:
            _claims.setdefault(thread, []).append(self)
        try:
            yield
        finally:
            self._release(thread)

    def _release(self, thread: int) -> None:
        with _claims_lock:
            claimants = _claims.get(thread, [])
            if self in claimants:
                claimants.remove(self)
            if not claimants:
                _claims.pop(thread, None)

    def close(self) -> None:
        """Send unfinished lines, stop capturing and forget every thread this tee claimed."""
        with self._lock:
            leftovers = list(self._partial.values())
            self._partial.clear()
        for line in leftovers:
            self._deliver(line)
        self.active = False
        with _claims_lock:
            threads = [thread for thread, claimants in _claims.items() if self in claimants]
        for thread in threads:
            self._release(thread)


@contextlib.contextmanager
def _capture_prints(sink: Callable[[str], None]) -> Iterator[_PrintTee]:
    """Tee sys.stdout to `sink` for the duration; restore it afterwards, also on errors."""
    # Locked so that flows starting or ending together in several threads cannot both wrap
    # the same stream and lose one of the tees.
    with _stdout_lock:
        tee = _PrintTee(sys.stdout, sink)
        sys.stdout = tee
    try:
        yield tee
    finally:
        tee.close()
        with _stdout_lock:
            if sys.stdout is tee:
                # Skip tees of flows that finished while we were on top of them (concurrent
                # local runs end in any order), so no dead tee is left in place.
                restored = tee.wrapped
                while isinstance(restored, _PrintTee) and not restored.active:
                    restored = restored.wrapped
                sys.stdout = restored
            # Otherwise someone replaced sys.stdout after us; leave theirs alone. This tee stays
            # below it as an inactive pass-through, skipped when the one above it is removed.
