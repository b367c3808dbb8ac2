"""Deploying with an image: build it from the project with the docker SDK, push it, and pin the
deployment to the pushed digest.

The docker SDK is imported on use: deploying with a code bundle must work without it.
`dockerfile="auto"` writes a Dockerfile on the official Python image of this interpreter's minor
version that installs this installation's push-pools wheel (push-pools is on no index) and the
project's requirements.txt, then copies the project; it sets nothing the engine needs at run
time (the run's environment comes from the pool). Runs start in the image's working directory,
so the deployment needs no pull step.
"""

from __future__ import annotations

import functools
import io
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from push_pools.errors import ImageError

if TYPE_CHECKING:
    from docker import DockerClient

    from push_pools.client import Client
    from push_pools.wheel import Wheel

__all__ = [
    "AUTO",
    "APP_DIR",
    "BuildContext",
    "BuiltImage",
    "DeploymentImage",
    "PushedImage",
    "build_context",
    "build_image",
    "docker_client",
    "generated_dockerfile",
    "push_image",
]

AUTO = "auto"
# Where the generated Dockerfile puts the project; runs start here (its WORKDIR).
APP_DIR = "/opt/push-pools/flows"
# Files we add to the build context for an auto build, under a folder no project uses.
_EXTRAS_DIR = ".push-pools-build"
# Lines of a failed build's output quoted in the error: enough to show the failing step.
_TAIL_LINES = 20
_ZIP_EPOCH = 315532800  # 1980-01-01: the same extras give the same context bytes


@dataclass(frozen=True)
class DeploymentImage:
    """The image a deployment's runs use, built from the project directory.

    `name` may carry a tag ("repo/app:v1") or a registry ("123456789012.dkr.ecr...../app");
    without a registry, after `--provision-infra` the image goes to the pool's registry.
    `dockerfile` is a path inside the project, or "auto" for a generated one.
    """

    name: str
    tag: str | None = None
    dockerfile: str = "Dockerfile"
    platform: str | None = None
    buildargs: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ImageError(f"image name {self.name!r} is not valid: give e.g. 'acme/flows:v1'")
        repository, tag = split_tag(self.name)
        if tag is not None and self.tag is not None and tag != self.tag:
            raise ImageError(
                f"image {self.name!r} already has tag {tag!r}; drop tag={self.tag!r} or the "
                "tag in the name"
            )

    @property
    def repository(self) -> str:
        return split_tag(self.name)[0]

    @property
    def reference(self) -> str:
        """repository:tag, with "latest" when no tag was given."""
        repository, tag = split_tag(self.name)
        return f"{repository}:{self.tag or tag or 'latest'}"

    def in_registry(self, registry: str, *, one_repository: bool = False) -> DeploymentImage:
        """This image named inside `registry` (a host, or host/path), unless it names one.

        `one_repository`: the registry path is a single repository (ECR's), so the image's own
        name goes into the tag ("flows:v1" -> "<repository>:flows-v1")."""
        if registry_of(self.repository) is not None:
            return self
        base = registry.rstrip("/")
        last = self.repository.rsplit("/", 1)[-1]
        tag = self.tag or split_tag(self.name)[1] or "latest"
        if one_repository:
            return DeploymentImage(
                base, f"{last}-{tag}", self.dockerfile, self.platform, self.buildargs
            )
        return DeploymentImage(
            f"{base}/{last}", tag, self.dockerfile, self.platform, self.buildargs
        )


def as_image(image: str | DeploymentImage) -> DeploymentImage:
    """A DeploymentImage from what `deploy(image=...)` accepts: a name builds ./Dockerfile."""
    if isinstance(image, DeploymentImage):
        return image
    if isinstance(image, str):
        return DeploymentImage(image)
    raise ImageError(f"image must be a name or a DeploymentImage, got {type(image).__name__}")


def split_tag(name: str) -> tuple[str, str | None]:
    """("host:5000/repo", "v1") for "host:5000/repo:v1"; a digest stays in the repository."""
    if "@" in name:
        return name, None
    head, _, last = name.rpartition("/")
    if ":" in last:
        repo, tag = last.rsplit(":", 1)
        return (f"{head}/{repo}" if head else repo), tag
    return name, None


def registry_of(repository: str) -> str | None:
    """The registry host of a repository name, or None for Docker Hub's short names."""
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


# --- the build context ------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildContext:
    data: bytes
    dockerfile: str  # its path inside the context
    files: frozenset[str]  # the project's files in it, relative paths

    @property
    def size(self) -> int:
        return len(self.data)


def generated_dockerfile(project: Path, wheel_name: str, requirements: bool | None = None) -> str:
    """The Dockerfile of `dockerfile="auto"`: dependencies first, so a code change rebuilds
    only the last layer. `requirements`: whether requirements.txt is in the build context
    (default: whether the project has one)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheel = f"{_EXTRAS_DIR}/{wheel_name}"
    lines = [
        f"FROM python:{version}-slim",
        f"COPY {wheel} /tmp/push-pools/{wheel_name}",
        f"RUN python -m pip install --no-cache-dir /tmp/push-pools/{wheel_name} "
        "&& rm -rf /tmp/push-pools",
    ]
    if requirements is None:
        requirements = (project / "requirements.txt").is_file()
    if requirements:
        lines += [
            f"COPY requirements.txt {APP_DIR}/requirements.txt",
            f"RUN python -m pip install --no-cache-dir -r {APP_DIR}/requirements.txt",
        ]
    lines += [
        f"COPY . {APP_DIR}/",
        f"RUN rm -rf {APP_DIR}/{_EXTRAS_DIR}",
        f"WORKDIR {APP_DIR}",
    ]
    return "\n".join(lines) + "\n"


def build_context(project: Path, dockerfile: str = "Dockerfile") -> BuildContext:
    """The tar the engine builds from: the project as the docker SDK would send it (its
    .dockerignore applied), plus, for "auto", the generated Dockerfile and the push-pools
    wheel."""
    from docker.utils.build import exclude_paths

    root = project.resolve()
    extras: dict[str, bytes] = {}
    if dockerfile == AUTO:
        wheel = _wheel()
        extras[f"{_EXTRAS_DIR}/{wheel.filename}"] = wheel.data
        path_in_context = f"{_EXTRAS_DIR}/Dockerfile"
    else:
        path_in_context = _dockerfile_in(root, dockerfile)
    files = sorted(exclude_paths(str(root), _dockerignore(root), dockerfile=path_in_context))
    if dockerfile == AUTO:
        # Only a requirements.txt the context holds: one .dockerignore drops cannot be copied.
        wanted = "requirements.txt" in files and (root / "requirements.txt").is_file()
        extras[path_in_context] = generated_dockerfile(root, wheel.filename, wanted).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for relative in files:
            if relative.split("/", 1)[0] == _EXTRAS_DIR:
                continue  # ours: a leftover of an interrupted build is not the project's
            tar.add(str(root / relative), arcname=relative, recursive=False)
        for name, data in extras.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, _ZIP_EPOCH
            tar.addfile(info, io.BytesIO(data))
    project_files = frozenset(f for f in files if (root / f).is_file() or (root / f).is_symlink())
    return BuildContext(buffer.getvalue(), path_in_context, project_files)


@functools.cache
def _wheel() -> Wheel:
    # Zipping the package takes ~0.2 s: once per process, for deploys of several deployments.
    from push_pools.wheel import build_wheel

    return build_wheel()


def _dockerfile_in(root: Path, dockerfile: str) -> str:
    path = Path(dockerfile).expanduser()
    absolute = (path if path.is_absolute() else root / path).resolve()
    if not absolute.is_file():
        raise ImageError(
            f"Dockerfile not found: {absolute} (give dockerfile='auto' to generate one)"
        )
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        raise ImageError(
            f"the Dockerfile {absolute} is outside the project directory {root}, the build "
            "context; move it into the project"
        ) from None


def _dockerignore(root: Path) -> list[str]:
    # As the docker SDK reads it when it builds from a path.
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def check_entrypoint(context: BuildContext, entrypoint: str, project: Path) -> str | None:
    """A warning when the entrypoint's file would not be in the image, else None."""
    from push_pools.deploy.entrypoints import split_entrypoint

    path_text, _ = split_entrypoint(entrypoint)
    path = Path(path_text)
    root = project.resolve()
    absolute = (path if path.is_absolute() else root / path).resolve()
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        relative = None
    if relative is not None and relative in context.files:
        return None
    if relative is None or not absolute.is_file():
        return (
            f"the entrypoint {entrypoint!r} is not in the build context {root}: runs of this "
            "image will not find the flow; deploy from the project root"
        )
    return (
        f"the entrypoint {entrypoint!r} is left out of the image by .dockerignore: runs of "
        "this image will not find the flow"
    )


# --- the engine -------------------------------------------------------------------------------


def docker_host() -> str:
    import os

    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (DOCKER_HOST is unset)"


def docker_client() -> DockerClient:
    """A client of the engine DOCKER_HOST names, checked to answer."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise ImageError(
            "building an image needs the docker SDK: pip install 'push-pools[docker]'"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        raise ImageError(
            f"no Docker engine is reachable (DOCKER_HOST={docker_host()}): {_reason(exc)}"
        ) from None
    return client


def _reason(exc: Exception) -> str:
    import re

    # requests nests the OS's error several deep; that is the part a user can act on.
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found.group(1).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


@dataclass(frozen=True)
class BuiltImage:
    reference: str  # repository:tag
    image_id: str
    context_bytes: int
    # Seconds this process spent making the context (wheel, Dockerfile, tar): ours, not the
    # engine's.
    prepare_seconds: float = 0.0


def build_image(
    image: DeploymentImage,
    project: Path,
    *,
    client: DockerClient | None = None,
    entrypoint: str | None = None,
    warn: Callable[[str], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Build `image` from `project`; ImageError with the failing step's output on failure."""
    started = time.perf_counter()
    context = build_context(project, image.dockerfile)
    if entrypoint is not None:
        warning = check_entrypoint(context, entrypoint, project)
        if warning is not None:
            (warn or _stderr)(warning)
    prepared = time.perf_counter() - started
    engine = client or docker_client()
    from docker.errors import APIError
    from requests.exceptions import RequestException

    try:
        stream = engine.api.build(
            fileobj=io.BytesIO(context.data),
            custom_context=True,
            dockerfile=context.dockerfile,
            tag=image.reference,
            platform=image.platform,
            buildargs=dict(image.buildargs or {}),
            rm=True,
            decode=True,
        )
        image_id = _read_build(stream, image.reference, echo)
    except APIError as exc:
        raise ImageError(f"building {image.reference} failed: {_explain(exc)}") from None
    except RequestException as exc:
        raise ImageError(
            f"the Docker engine at {docker_host()} stopped answering during the build of "
            f"{image.reference}: {_reason(exc)}"
        ) from None
    finally:
        if client is None:
            engine.close()
    return BuiltImage(image.reference, image_id, context.size, prepared)


def _read_build(
    stream: Iterable[dict[str, Any]], reference: str, echo: Callable[[str], None] | None
) -> str:
    output: list[str] = []
    image_id = ""
    for event in stream:
        if "stream" in event:
            text = str(event["stream"])
            output.extend(line for line in text.splitlines() if line.strip())
            if echo is not None:
                echo(text.rstrip("\n"))
        if "error" in event or "errorDetail" in event:
            detail = event.get("errorDetail") or {}
            message = str(event.get("error") or detail.get("message") or "unknown error")
            tail = "\n".join(output[-_TAIL_LINES:])
            raise ImageError(
                f"building {reference} failed: {message.strip()}"
                + (f"\n--- build output (last lines) ---\n{tail}" if tail else "")
            )
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            image_id = str(aux["ID"])
    if not image_id:
        # The classic builder's last line says "Successfully built <id>".
        for line in reversed(output):
            if line.startswith("Successfully built "):
                image_id = line.split()[-1]
                break
    if not image_id:
        raise ImageError(f"building {reference} failed: the engine reported no image id")
    return image_id


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip().splitlines()[0][:500]


def _stderr(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


# --- pushing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushedImage:
    reference: str  # repository:tag, as pushed
    digest: str  # sha256:...
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pinned(self) -> str:
        """repository@sha256:...: what runs pull, so a later push to the tag changes nothing."""
        return f"{split_tag(self.reference)[0]}@{self.digest}"


def push_image(
    reference: str,
    *,
    auth_config: Mapping[str, str] | None = None,
    client: DockerClient | None = None,
) -> PushedImage:
    """Push `reference`; ImageError with the registry's message when it refuses.

    docker-py does not raise on push errors: they arrive as lines of the stream."""
    repository, tag = split_tag(reference)
    engine = client or docker_client()
    from docker.errors import APIError
    from requests.exceptions import RequestException

    try:
        stream = engine.api.push(
            repository,
            tag=tag,
            stream=True,
            decode=True,
            auth_config=dict(auth_config) if auth_config else None,
        )
        digest = _read_push(stream, reference)
    except APIError as exc:
        raise ImageError(f"pushing {reference} failed: {_explain(exc)}") from None
    except RequestException as exc:
        raise ImageError(
            f"the Docker engine at {docker_host()} stopped answering during the push of "
            f"{reference}: {_reason(exc)}"
        ) from None
    finally:
        if client is None:
            engine.close()
    return PushedImage(reference, digest)


def _read_push(stream: Iterator[dict[str, Any]], reference: str) -> str:
    digest = ""
    for event in stream:
        if "error" in event or "errorDetail" in event:
            detail = event.get("errorDetail") or {}
            message = str(event.get("error") or detail.get("message") or "unknown error")
            raise ImageError(f"pushing {reference} failed: {message.strip()}")
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            digest = str(aux["Digest"])
        status = str(event.get("status") or "")
        if not digest and "digest: sha256:" in status:
            # Older engines only say it in the status text.
            digest = "sha256:" + status.split("digest: sha256:", 1)[1].split()[0]
    if not digest:
        raise ImageError(f"pushing {reference} failed: the registry reported no digest")
    return digest


# --- build, push, pin -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedImage:
    image: str  # what runs use: repository@sha256:... once pushed, else repository:tag
    reference: str  # repository:tag
    digest: str | None
    context_bytes: int  # 0 when nothing was built
    prepare_seconds: float = 0.0

    def describe(self) -> str:
        if self.digest:
            return f"image {self.reference} pushed; runs use {self.image}"
        if self.context_bytes:
            return f"image {self.reference} built ({self.context_bytes:,} bytes of context)"
        return f"image {self.reference}"


def check_pool_runs_images(api: Client, pool_name: str) -> None:
    """InvalidInput, before any build, when the pool's runs cannot use an image."""
    from push_pools.errors import InvalidInput

    pool = api.get_work_pool(pool_name)
    variables = (pool.get("base_job_template") or {}).get("variables") or {}
    if "image" not in (variables.get("properties") or {}):
        raise InvalidInput(
            f"work pool {pool_name!r} ({pool.get('type')}) runs no images: its job variables "
            "have no 'image'; deploy with an image to a docker, ECS, Cloud Run or ACI pool, "
            "or deploy without one"
        )


def ship_image(
    image: str | DeploymentImage,
    project: Path,
    *,
    entrypoint: str | None = None,
    build: bool = True,
    push: bool = True,
    api: Client | None = None,
    pool_name: str | None = None,
    warn: Callable[[str], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> ShippedImage:
    """Build and push an image for a deployment, and say which reference its runs use.

    An image named without a registry goes to the pool's registry when `--provision-infra`
    made one (`api` and `pool_name` find it)."""
    from push_pools.deploy.registries import auth_config_for, pool_registry

    wanted = as_image(image)
    if api is not None and pool_name and push:
        registry = pool_registry(api, pool_name)
        if registry is not None:
            wanted = wanted.in_registry(registry.location, one_repository=registry.one_repository)
    if not build and not push:
        return ShippedImage(wanted.reference, wanted.reference, None, 0)
    engine = docker_client()
    try:
        built = None
        if build:
            built = build_image(
                wanted, project, client=engine, entrypoint=entrypoint, warn=warn, echo=echo
            )
        context_bytes = built.context_bytes if built else 0
        prepare_seconds = built.prepare_seconds if built else 0.0
        if not push:
            return ShippedImage(
                wanted.reference, wanted.reference, None, context_bytes, prepare_seconds
            )
        auth = auth_config_for(registry_of(wanted.repository))
        pushed = push_image(wanted.reference, auth_config=auth, client=engine)
    finally:
        engine.close()
    return ShippedImage(
        pushed.pinned, wanted.reference, pushed.digest, context_bytes, prepare_seconds
    )


# --- push-pools.yaml steps (registered in deploy/steps.py) -------------------------------------


def build_docker_image_step(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    """`build_docker_image`: build from the step's directory; outputs image_name, tag, image
    (name:tag), image_id and context_bytes, for `{{ build-image.image }}`."""
    image = DeploymentImage(
        str(options["image_name"]),
        tag=_optional(options.get("tag")),
        dockerfile=str(options.get("dockerfile") or "Dockerfile"),
        platform=_optional(options.get("platform")),
        buildargs={str(k): str(v) for k, v in (options.get("buildargs") or {}).items()},
    )
    built = build_image(image, cwd, echo=print)
    repository, tag = split_tag(built.reference)
    return {
        "image_name": repository,
        "tag": tag,
        "image": built.reference,
        "image_id": built.image_id,
        "context_bytes": built.context_bytes,
    }


def push_docker_image_step(cwd: Path, options: dict[str, Any]) -> dict[str, Any]:
    """`push_docker_image`: push with the registry's token (ECR, Artifact Registry, ACR) or
    the given `credentials` (username, password); outputs image_name, tag, digest and image,
    the pinned repository@sha256:... for the job variables."""
    from push_pools.deploy.registries import auth_config_for

    repository, tag_in_name = split_tag(str(options["image_name"]))
    tag = _optional(options.get("tag")) or tag_in_name or "latest"
    reference = f"{repository}:{tag}"
    credentials = options.get("credentials")
    auth: Mapping[str, str] | None
    if isinstance(credentials, Mapping) and credentials.get("username"):
        auth = {
            "username": str(credentials["username"]),
            "password": str(credentials.get("password") or ""),
            "serveraddress": str(credentials.get("registry_url") or registry_of(repository) or ""),
        }
    else:
        auth = auth_config_for(registry_of(repository))
    pushed = push_image(reference, auth_config=auth)
    return {"image_name": repository, "tag": tag, "digest": pushed.digest, "image": pushed.pinned}


def _optional(value: object) -> str | None:
    return None if value in (None, "") else str(value)
