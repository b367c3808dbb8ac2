"""Build, push and pull steps: small actions listed in push-pools.yaml and in a deployment.

A step is a one-key mapping, the step's name to its options, as in Prefect's prefect.yaml:

    - push_pools.deployments.steps.git_clone:
        id: clone
        repository: https://github.com/org/repo.git
        branch: main

The short name (`git_clone`) and Prefect's own names (`prefect.deployments.steps.git_clone`)
name the same step, so a prefect.yaml's steps run unchanged. A step may return outputs; with an
`id`, later steps can use them as `{{ clone.directory }}`. `{{ $NAME }}` reads an environment
variable. Pull steps run at the start of every flow run: `set_working_directory`, `git_clone`
and `pull_bundle` (the code `deploy` uploaded) move the working directory, which is where the
entrypoint is then loaded from.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from push_pools.errors import InvalidInput

PREFIX = "push_pools.deployments.steps."
# Prefect 2.10's project steps were renamed later; both spellings still appear in the wild.
_FOREIGN_PREFIXES = (
    "prefect.deployments.steps.",
    "prefect.projects.steps.",
    # prefect.yaml's image steps, and the module the image steps live in.
    "prefect_docker.deployments.steps.",
    "push_pools.deploy.steps.",
)
_FOREIGN_RENAMES = {"git_clone_project": "git_clone"}

# Options every step accepts besides its own: the output id, and Prefect's package requirement
# (which we ignore: our steps ship with push-pools).
_COMMON_OPTIONS = ("id", "requires")

_TEMPLATE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

# Lines of a failed command's output quoted in the error; enough to show the cause.
_TAIL_LINES = 20


@dataclass(frozen=True)
class StepSpec:
    name: str
    run: Callable[[Path, dict[str, Any]], dict[str, Any]]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    # Whether the step's "directory" output becomes the working directory of the steps after it.
    moves_cwd: bool = False

    @property
    def full_name(self) -> str:
        return PREFIX + self.name


@dataclass(frozen=True)
class Step:
    """One parsed step: what to run, its options (templates not yet filled in) and its id."""

    spec: StepSpec
    options: dict[str, Any]
    id: str | None
    label: str  # "pull step 2 (git_clone)", for messages


@dataclass(frozen=True)
class StepsResult:
    directory: Path
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- running -----------------------------------------------------------------------------------


def run_steps(steps: list[dict[str, Any]], cwd: Path) -> Path:
    """Run steps in order from `cwd`; return the working directory they leave behind."""
    return execute_steps(steps, cwd).directory


def execute_steps(
    steps: list[dict[str, Any]] | None,
    cwd: Path,
    section: str = "step",
    outputs: Mapping[str, dict[str, Any]] | None = None,
) -> StepsResult:
    """Run steps in order; return the final working directory and the outputs of steps with ids.

    `outputs` are those of steps run before (the build steps' when running push steps), so
    these steps can refer to them. The process's own working directory is left alone: callers
    decide whether to chdir.
    """
    directory = cwd.resolve()
    outputs = dict(outputs or {})
    for step in parse_steps(steps, section, known_ids=set(outputs)):
        options = resolve_templates(step.options, outputs, strict=True, where=step.label)
        result = step.spec.run(directory, options) or {}
        if step.id is not None:
            outputs[step.id] = result
        if step.spec.moves_cwd:
            directory = Path(result["directory"])
    return StepsResult(directory=directory, outputs=outputs)


def parse_steps(
    steps: list[dict[str, Any]] | None, section: str = "step", known_ids: set[str] | None = None
) -> list[Step]:
    """Check the shape, names, options and template references of steps without running them.

    Done at deploy time too, so a typo in a pull step fails `deploy`, not every flow run.
    `known_ids` are ids of steps that ran before these.
    """
    if steps is None:
        return []
    if not isinstance(steps, list):
        raise InvalidInput(f"{section} steps must be a list, got {type(steps).__name__}")
    parsed: list[Step] = []
    ids: set[str] = set(known_ids or ())
    for number, raw in enumerate(steps, start=1):
        step = _parse_step(raw, f"{section} step {number}")
        for reference in _references(step.options):
            step_id = reference.split(".", 1)[0]
            if not reference.startswith("$") and step_id not in ids:
                raise InvalidInput(
                    f"{step.label} uses '{{{{ {reference} }}}}', but no earlier step has "
                    f"id '{step_id}'; give that step `id: {step_id}`, or use '{{{{ $NAME }}}}' "
                    "for an environment variable"
                )
        if step.id is not None:
            if step.id in ids:
                raise InvalidInput(f"{step.label}: id '{step.id}' is already used by a step")
            ids.add(step.id)
        parsed.append(step)
    return parsed


def _parse_step(raw: object, where: str) -> Step:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise InvalidInput(
            f"{where} must be a mapping with one key, the step's name, e.g. "
            "{'git_clone': {'repository': 'https://github.com/org/repo.git'}}; got "
            f"{raw!r}"
        )
    ((name, options),) = raw.items()
    spec = get_step(str(name))
    label = f"{where} ({spec.name})"
    if options is None:  # `- pip_install_requirements:` with nothing under it
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput(f"{label}: options must be a mapping, got {options!r}")
    options = dict(options)
    step_id = options.pop("id", None)
    options.pop("requires", None)
    if step_id is not None and (not isinstance(step_id, str) or not step_id.strip()):
        raise InvalidInput(f"{label}: id must be a non-empty string, got {step_id!r}")
    allowed = (*spec.required, *spec.optional)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"{label}: unknown option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join((*allowed, *_COMMON_OPTIONS))}"
        )
    missing = [name for name in spec.required if options.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"{label}: missing option(s) {', '.join(missing)}")
    return Step(spec=spec, options=options, id=step_id, label=label)


def get_step(name: str) -> StepSpec:
    """The step a name means: full, short, or Prefect's; InvalidInput listing known ones."""
    short = name.removeprefix(PREFIX)
    for prefix in _FOREIGN_PREFIXES:
        if name.startswith(prefix):
            short = name.removeprefix(prefix)
            short = _FOREIGN_RENAMES.get(short, short)
            break
    spec = STEPS.get(short)
    if spec is None:
        known = ", ".join(s.full_name for s in STEPS.values())
        raise InvalidInput(
            f"unknown step {name!r}; known steps: {known} (the short names, e.g. 'git_clone', "
            "and Prefect's prefect.deployments.steps.* names work too)"
        )
    return spec


# --- templates ---------------------------------------------------------------------------------


def resolve_templates(
    value: Any,
    outputs: Mapping[str, Mapping[str, Any]],
    *,
    strict: bool = True,
    environment: bool = True,
    where: str = "step",
) -> Any:
    """Fill `{{ step_id.key }}` and `{{ $ENV }}` in strings, recursively through lists and dicts.

    A string that is exactly one template takes the output's value as is (a list stays a list).
    With strict=False, references to unknown step ids are left as they are: used at deploy time
    for deployment fields and pull steps, whose own references are filled in at run time. With
    environment=False, `{{ $ENV }}` is left for later too (a pull step's token must come from
    the run's environment, not the deploying machine's).
    """
    if isinstance(value, dict):
        return {
            k: resolve_templates(v, outputs, strict=strict, environment=environment, where=where)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            resolve_templates(v, outputs, strict=strict, environment=environment, where=where)
            for v in value
        ]
    if not isinstance(value, str) or "{{" not in value:
        return value

    def lookup(reference: str, default: str) -> Any:
        if reference.startswith("$") and not environment:
            return default
        return _lookup(reference, outputs, strict, where, default)

    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return lookup(whole.group(1), value)

    def substitute(match: re.Match[str]) -> str:
        found = lookup(match.group(1), match.group(0))
        return found if isinstance(found, str) else _to_text(found)

    return _TEMPLATE.sub(substitute, value)


def _lookup(
    reference: str, outputs: Mapping[str, Mapping[str, Any]], strict: bool, where: str, default: str
) -> Any:
    if reference.startswith("$"):
        name = reference[1:]
        if name in os.environ:
            return os.environ[name]
        if not strict:
            return default
        raise InvalidInput(f"{where} uses '{{{{ {reference} }}}}', but ${name} is not set")
    step_id, _, path = reference.partition(".")
    if step_id not in outputs:
        if not strict:
            return default
        raise InvalidInput(f"{where} uses '{{{{ {reference} }}}}', but no step has id '{step_id}'")
    value: Any = outputs[step_id]
    for key in path.split(".") if path else []:
        if not isinstance(value, Mapping) or key not in value:
            keys = ", ".join(outputs[step_id]) or "none"
            raise InvalidInput(
                f"{where} uses '{{{{ {reference} }}}}', but step '{step_id}' has no output "
                f"{key!r} (its outputs: {keys})"
            )
        value = value[key]
    return value


def _to_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    if isinstance(value, str):
        return _TEMPLATE.findall(value)
    return []


# --- the steps ---------------------------------------------------------------------------------


def set_working_directory(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    directory = _in(cwd, options["directory"])
    if not directory.is_dir():
        raise InvalidInput(f"set_working_directory: directory {directory} does not exist")
    return {"directory": str(directory)}


def git_clone(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Shallow-clone a repository into the working directory (or update an earlier clone)."""
    repository = str(options["repository"])
    branch = _optional_str(options.get("branch"))
    commit = _optional_str(options.get("commit") or options.get("commit_sha"))
    token = _optional_str(options.get("access_token"))
    url = _with_token(repository, token) if token else repository
    shown = _redact(repository)

    if options.get("directory"):
        target = _in(cwd, options["directory"])
    else:
        target = cwd.resolve() / repo_directory_name(repository)

    def git(*args: str, cwd_: Path | None = None) -> subprocess.CompletedProcess[str]:
        return _git(list(args), cwd_ or target, shown, secret=token)

    if target.exists() and any(target.iterdir()):
        if not _is_clone_of(target, url):
            raise InvalidInput(
                f"cannot clone {shown}: {target} already exists and is not a clone of it; "
                "remove it, or give git_clone another `directory`"
            )
        # Re-running a pull step in the same place (a worker's reused directory) updates the
        # checkout instead of failing on the existing directory.
        git("fetch", "--depth", "1", "origin", branch or "HEAD")
        git("checkout", "--force", "--detach", "FETCH_HEAD")
    else:
        args = ["clone", "--depth", "1"]
        if branch:
            args += ["--branch", branch]
        if options.get("include_submodules"):
            args.append("--recurse-submodules")
        target.parent.mkdir(parents=True, exist_ok=True)
        git(*args, "--", url, str(target), cwd_=target.parent)
    if commit:
        _checkout_commit(target, commit, shown, token)
    head = git("rev-parse", "HEAD").stdout.strip()
    return {"directory": str(target), "commit": head}


def _checkout_commit(target: Path, commit: str, shown: str, token: str | None) -> None:
    try:
        # Servers such as GitHub let a shallow clone fetch one commit by its id.
        _git(["fetch", "--depth", "1", "origin", commit], target, shown, secret=token)
    except InvalidInput:
        # Others only serve reachable refs: fetch the whole history and look for it there.
        _git(["fetch", "--unshallow", "origin"], target, shown, secret=token, check=False)
        _git(["fetch", "origin"], target, shown, secret=token)
        _git(["checkout", "--force", "--detach", commit], target, shown, secret=token)
        return
    _git(["checkout", "--force", "--detach", "FETCH_HEAD"], target, shown, secret=token)


def repo_directory_name(repository: str) -> str:
    """ "repo" for https://host/org/repo.git, git@host:org/repo.git, /path/to/repo, ..."""
    tail = repository.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]
    name = tail.removesuffix(".git") or "repository"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _is_clone_of(target: Path, url: str) -> bool:
    if not (target / ".git").exists():
        return False
    # git from PATH on purpose: the user's own git, with their config and credential helpers.
    found = subprocess.run(  # nosec B607
        ["git", "-C", str(target), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        env=_git_env(),
    )
    return _same_repository(found.stdout.strip(), url)


def _same_repository(a: str, b: str) -> bool:
    def normal(url: str) -> str:
        if url.startswith("file://"):
            url = urlsplit(url).path
        if "://" not in url and not url.startswith("git@") and Path(url).exists():
            return str(Path(url).resolve())
        return url.rstrip("/").removesuffix(".git")

    return normal(a) == normal(b)


def _git(
    args: list[str], cwd: Path, shown: str, *, secret: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None:
        raise InvalidInput(f"cannot clone {shown}: git is not installed (not found on PATH)")
    # The user's git from PATH, as in _is_clone_of.
    result = subprocess.run(  # nosec B607
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=_git_env()
    )
    if check and result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"git {args[0]} exited with {result.returncode}"
        if secret:
            last = last.replace(secret, "***")
        raise InvalidInput(f"cannot clone {shown}: {last}")
    return result


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # A flow run has nobody at the keyboard: fail at once instead of waiting for a password.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _with_token(repository: str, token: str) -> str:
    parts = urlsplit(repository)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"git_clone: access_token needs an https:// repository, got {repository}"
        )
    netloc = f"{token}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _redact(repository: str) -> str:
    # Credentials written into the URL must not end up in error messages and logs.
    parts = urlsplit(repository)
    if parts.scheme and (parts.username or parts.password):
        netloc = f"***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return repository


def run_shell_script(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    script = str(options["script"])
    directory = _in(cwd, options["directory"]) if options.get("directory") else cwd
    if not directory.is_dir():
        raise InvalidInput(f"run_shell_script: directory {directory} does not exist")
    env = dict(os.environ)
    extra = options.get("env") or {}
    if not isinstance(extra, dict):
        raise InvalidInput(f"run_shell_script: env must be a mapping, got {extra!r}")
    env.update({str(k): _env_text(v) for k, v in extra.items()})
    shell = shutil.which("bash") or shutil.which("sh") or "sh"
    returncode, stdout, stderr = _run_streaming(
        [shell, "-c", script], directory, env, bool(options.get("stream_output", True))
    )
    if returncode != 0:
        raise InvalidInput(
            f"run_shell_script failed with exit code {returncode}: "
            f"{_tail(stdout + stderr) or '(no output)'}"
        )
    return {"stdout": stdout.strip(), "stderr": stderr.strip()}


def pip_install_requirements(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    directory = _in(cwd, options["directory"]) if options.get("directory") else cwd
    requirements = _in(directory, options.get("requirements_file") or "requirements.txt")
    if not requirements.is_file():
        raise InvalidInput(f"pip_install_requirements: {requirements} does not exist")
    return install_requirements(
        directory, requirements, stream=bool(options.get("stream_output", True))
    )


def install_requirements(
    directory: Path,
    requirements: Path,
    *,
    stream: bool = True,
    prefer_uv: bool = False,
    what: str = "pip_install_requirements",
) -> dict[str, Any]:
    """Install a requirements file into this interpreter (or, where it is read-only, into a
    directory of this run's put first on sys.path); `prefer_uv` uses uv whenever it is there."""
    has_pip = importlib.util.find_spec("pip") is not None
    if shutil.which("uv") and (prefer_uv or not has_pip):
        # Environments made by uv have no pip; install into this interpreter with uv instead.
        argv = ["uv", "pip", "install", "--python", sys.executable, "-r", str(requirements)]
    else:
        argv = [sys.executable, "-m", "pip", "install", "-r", str(requirements)]
    target = None
    if not os.access(sysconfig.get_paths()["purelib"], os.W_OK):
        # An isolated managed run sees its interpreter read-only (it is the server's, or an
        # environment other runs share): install for this run only, in its own temp directory.
        target = tempfile.mkdtemp(prefix="requirements-")
        argv += ["--target", target]
    returncode, stdout, stderr = _run_streaming(argv, directory, dict(os.environ), stream)
    if returncode != 0:
        raise InvalidInput(
            f"{what}: installing {requirements} failed "
            f"(exit code {returncode}): {_tail(stdout + stderr) or '(no output)'}"
        )
    if target is not None:
        # First, so the requirements win over what the interpreter has; PYTHONPATH for the
        # flow's own Python subprocesses.
        sys.path.insert(0, target)
        importlib.invalidate_caches()
        existing = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = target + (os.pathsep + existing if existing else "")
    return {"stdout": stdout.strip(), "stderr": stderr.strip()}


def pull_bundle(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    # Imported on use: the step needs the API client, which plain steps do not.
    from push_pools.deploy.pull_bundle import pull_bundle as pull

    return pull(cwd, options)


def build_docker_image(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    # Imported on use: the docker SDK is optional.
    from push_pools.deploy.images import build_docker_image_step

    return build_docker_image_step(cwd, options)


def push_docker_image(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    from push_pools.deploy.images import push_docker_image_step

    return push_docker_image_step(cwd, options)


def _in(base: Path, directory: object) -> Path:
    path = Path(str(directory)).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _optional_str(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tail(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return "\n".join(lines[-_TAIL_LINES:])


def _run_streaming(
    argv: list[str], cwd: Path, env: dict[str, str], stream: bool
) -> tuple[int, str, str]:
    """Run a command, echoing its output as it comes (a long build shows progress) and keeping
    it for the error message. Returns (exit code, stdout, stderr)."""
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise InvalidInput(f"cannot run {argv[0]}: {exc}") from exc
    collected: dict[str, list[str]] = {"out": [], "err": []}

    def pump(pipe: IO[str], key: str, sink: IO[str]) -> None:
        for line in pipe:
            collected[key].append(line)
            if stream:
                sink.write(line)
                sink.flush()

    if process.stdout is None or process.stderr is None:  # PIPE above makes both
        raise RuntimeError("subprocess pipes were not created")
    # Two readers, so a command that fills one pipe while we block on the other cannot hang.
    readers = [
        threading.Thread(target=pump, args=(process.stdout, "out", sys.stdout), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, "err", sys.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    returncode = process.wait()
    for reader in readers:
        reader.join()
    return returncode, "".join(collected["out"]), "".join(collected["err"])


STEPS: dict[str, StepSpec] = {
    spec.name: spec
    for spec in (
        StepSpec("set_working_directory", set_working_directory, ("directory",), (), True),
        StepSpec(
            "git_clone",
            git_clone,
            ("repository",),
            ("branch", "commit", "commit_sha", "directory", "access_token", "include_submodules"),
            True,
        ),
        StepSpec(
            "run_shell_script",
            run_shell_script,
            ("script",),
            ("directory", "env", "stream_output", "expand_env_vars"),
        ),
        StepSpec("pull_bundle", pull_bundle, ("sha256",), ("install_requirements",), True),
        StepSpec(
            "pip_install_requirements",
            pip_install_requirements,
            (),
            ("requirements_file", "directory", "stream_output"),
        ),
        StepSpec(
            "build_docker_image",
            build_docker_image,
            ("image_name",),
            ("tag", "dockerfile", "platform", "buildargs"),
        ),
        StepSpec("push_docker_image", push_docker_image, ("image_name",), ("tag", "credentials")),
    )
}
