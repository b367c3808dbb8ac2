"""POST /build: the classic builder's steps over the uploaded context, without running RUN.

What it does, step by step, as the engine's classic builder streams it ("Step 2/7 : ..."):
FROM takes a local image or pulls it from the registry (`scratch` is empty; `pull=1` always
pulls); ARG takes the build arg or its default; ENV, LABEL, WORKDIR, USER, CMD, ENTRYPOINT,
EXPOSE, VOLUME, STOPSIGNAL, SHELL, HEALTHCHECK and ONBUILD set the image config; COPY and ADD
copy files from the context (or `--from` a stage or image) into the stage's directory tree.
RUN is recorded and reported but not executed, unless a BuildFailure's text occurs in it: then
it prints the failure's lines and fails with the builder's message and exit code.

Multi-stage builds and `target` work; the result is the last stage (or the target). Building
the same inputs again without `nocache` gives the same image, as the builder's cache does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import shutil
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.emulators.docker.dockerfile import (
    DockerfileError,
    Instruction,
    expand,
    expand_words,
    parse_dockerfile,
)
from tests.emulators.docker.exceptions import DockerApiError
from tests.emulators.docker.filesystem import (
    CopyError,
    Workspace,
    clone_tree,
    copy_into,
    dockerignored,
    extract_tar,
    inside,
    read_tree,
)
from tests.emulators.docker.images import Image, ImageConfig, ImageStore, Layer, make_image
from tests.emulators.docker.references import Reference, parse_reference

__all__ = ["BuildFailure", "BuildRecord", "Builder"]

Event = dict[str, Any]
# Pulls a base image: (reference, auth for its registry) -> (image, progress events).
Puller = Callable[[Reference, Mapping[str, Any] | None], tuple[Image, list[Event]]]

DEFAULT_SHELL = ["/bin/sh", "-c"]
# Build args every build accepts without an ARG (no "not consumed" warning for them).
PREDEFINED_ARGS = {
    f"{name}{suffix}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for suffix in ("", "_lower")
} | {"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"}


@dataclass(frozen=True)
class BuildFailure:
    """A RUN whose command contains `text` fails with these output lines and exit code."""

    text: str
    output: tuple[str, ...] = ("ERROR: this step was told to fail (DockerEmulator)",)
    exit_code: int = 1


@dataclass
class BuildRecord:
    """One POST /build: what the engine received and what it made of it."""

    tags: list[Reference] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    platform: str | None = None
    nocache: bool = False
    pull: bool = False
    quiet: bool = False
    target: str | None = None
    params: dict[str, list[str]] = field(default_factory=dict)  # the whole query string
    registry_config: dict[str, Any] | None = None  # decoded X-Registry-Config
    context: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    dockerfile_text: str = ""
    runs: list[str] = field(default_factory=list)  # each RUN's command, in order
    image: Image | None = None
    error: str | None = None
    events: list[Event] = field(default_factory=list)


class BuildFailed(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Stage:
    name: str | None
    rootfs: Path
    config: ImageConfig
    base: Image | None
    base_name: str
    architecture: str
    layers: list[Layer] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    args: dict[str, str | None] = field(default_factory=dict)
    cache: Any = field(default_factory=hashlib.sha256)

    def scope(self) -> dict[str, str]:
        """What `$NAME` means here: ARG values, overridden by ENV."""
        values = {name: value for name, value in self.args.items() if value is not None}
        return {**values, **self.config.env_dict()}


class Builder:
    def __init__(
        self,
        images: ImageStore,
        workspace: Workspace,
        pull: Puller,
        failures: list[BuildFailure],
    ) -> None:
        self.images = images
        self.workspace = workspace
        self.pull = pull
        self.failures = failures

    def build(self, record: BuildRecord, archive: bytes) -> list[Event]:
        """Run the build, filling `record`; the events to stream (an error ends them)."""
        run = _Run(self, record)
        try:
            image = run.execute(archive)
        except BuildFailed as exc:
            run.clean_up(keep=None)
            record.error = exc.message
            detail: dict[str, Any] = {"message": exc.message}
            if exc.code is not None:
                detail = {"code": exc.code, "message": exc.message}
            run.events.append({"errorDetail": detail, "error": exc.message})
            record.events = run.events
            return run.events
        run.clean_up(keep=image.rootfs)
        record.image = image
        for tag in record.tags:
            self.images.tag(image, tag)
        if record.quiet:
            run.events.append({"stream": f"{image.id}\n"})
        else:
            run.events.append({"aux": {"ID": image.id}})
            run.say(f"Successfully built {image.short_id}\n")
            for tag in record.tags:
                run.say(f"Successfully tagged {tag.familiar()}\n")
        record.events = run.events
        return run.events


class _Run:
    """The state of one build while its instructions execute."""

    def __init__(self, builder: Builder, record: BuildRecord) -> None:
        self.builder = builder
        self.record = record
        self.events: list[Event] = []
        self.stages: list[Stage] = []
        self.global_args: dict[str, str | None] = {}
        self.consumed: set[str] = set()
        self.context = builder.workspace.new_dir("context-")
        self._handlers: dict[str, Callable[[Stage, Instruction], None]] = {
            "ADD": self._copy,
            "ARG": self._arg,
            "CMD": self._cmd,
            "COPY": self._copy,
            "ENTRYPOINT": self._entrypoint,
            "ENV": self._env,
            "EXPOSE": self._expose,
            "HEALTHCHECK": self._healthcheck,
            "LABEL": self._label,
            "MAINTAINER": self._metadata,
            "ONBUILD": self._onbuild,
            "RUN": self._run,
            "SHELL": self._shell,
            "STOPSIGNAL": self._stopsignal,
            "USER": self._user,
            "VOLUME": self._volume,
            "WORKDIR": self._workdir,
        }

    # ------------------------------------------------------------------ driving

    def clean_up(self, keep: Path | None) -> None:
        """Remove the uploaded context and every stage's tree but the image's (`keep`)."""
        shutil.rmtree(self.context, ignore_errors=True)
        for stage in self.stages:
            if stage.rootfs != keep:
                shutil.rmtree(stage.rootfs, ignore_errors=True)

    def say(self, text: str) -> None:
        if not self.record.quiet:
            self.events.append({"stream": text})

    def execute(self, archive: bytes) -> Image:
        try:
            if archive:
                extract_tar(archive, self.context)
        except (tarfile.TarError, OSError) as exc:
            raise BuildFailed(f"failed to read build context: {exc}") from exc
        self.record.context = {
            name.lstrip("/"): content for name, content in read_tree(self.context).items()
        }
        instructions = self._instructions()
        total = len(instructions)
        for number, instruction in enumerate(instructions, start=1):
            if instruction.keyword == "FROM" and self._reached_target():
                break
            self.say(f"Step {number}/{total} : {instruction.text}")
            self.say("\n")
            self._step(instruction)
        if self.record.target and not any(s.name == self.record.target for s in self.stages):
            raise BuildFailed(f"failed to reach build target {self.record.target} in Dockerfile")
        unused = sorted(set(self.record.buildargs) - self.consumed - PREDEFINED_ARGS)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        return self._commit(self.stages[-1])

    def _instructions(self) -> list[Instruction]:
        name = self.record.dockerfile or "Dockerfile"
        path = inside(self.context, name)
        if not path.is_file() and name == "Dockerfile":
            path = inside(self.context, "dockerfile")
        if not path.is_file():
            raise BuildFailed(f"Cannot locate specified Dockerfile: {name}")
        self.record.dockerfile_text = path.read_text(errors="replace")
        self._drop_ignored_build_files(path)
        try:
            instructions = parse_dockerfile(self.record.dockerfile_text)
        except DockerfileError as exc:
            raise BuildFailed(str(exc)) from exc
        if not instructions:
            raise BuildFailed(f"the Dockerfile ({name}) cannot be empty")
        first = next((i for i in instructions if i.keyword != "ARG"), None)
        if first is None or first.keyword != "FROM":
            raise BuildFailed("no build stage in current context")
        return instructions

    def _drop_ignored_build_files(self, dockerfile: Path) -> None:
        """The engine itself drops the Dockerfile and .dockerignore from the context when
        .dockerignore lists them (the client must send both), so `COPY . .` leaves them out."""
        ignore_file = self.context / ".dockerignore"
        if not ignore_file.is_file():
            return
        patterns = ignore_file.read_text(errors="replace").splitlines()
        for path in (dockerfile, ignore_file):
            if dockerignored(patterns, path.relative_to(self.context).as_posix()):
                path.unlink(missing_ok=True)

    def _reached_target(self) -> bool:
        return bool(
            self.record.target and self.stages and self.stages[-1].name == self.record.target
        )

    def _step(self, instruction: Instruction) -> None:
        if instruction.keyword == "ARG" and not self.stages:
            self._global_arg(instruction)
            return
        if instruction.keyword == "FROM":
            self._from(instruction)
            return
        stage = self.stages[-1]
        self._handlers[instruction.keyword](stage, instruction)
        stage.cache.update(
            f"\n{instruction.keyword} {self._cache_text(stage, instruction)}".encode()
        )
        self._intermediate(stage, instruction)

    def _intermediate(self, stage: Stage, instruction: Instruction) -> None:
        if instruction.keyword not in ("COPY", "ADD"):
            container = secrets.token_hex(6)
            self.say(f" ---> Running in {container}\n")
            self.say(f"Removing intermediate container {container}\n")
        self.say(f" ---> {stage.cache.hexdigest()[:12]}\n")

    def _cache_text(self, stage: Stage, instruction: Instruction) -> str:
        if instruction.keyword == "RUN":  # a RUN sees the build args in scope
            return instruction.rest + json.dumps(stage.args, sort_keys=True)
        return instruction.rest + json.dumps(instruction.flags, sort_keys=True)

    def _commit(self, stage: Stage) -> Image:
        config = copy.deepcopy(stage.config)
        config.labels.update(self.record.labels)
        # The config itself is part of the key: `ENV A=$ARG` reads the same with another value.
        inputs = [stage.cache.hexdigest(), stage.base.id if stage.base else "", config.to_api()]
        cache_key = hashlib.sha256(
            json.dumps([*inputs, stage.architecture], sort_keys=True).encode()
        ).hexdigest()
        if not self.record.nocache:
            for image in self.builder.images.images.values():
                if image.cache_key == cache_key:
                    shutil.rmtree(stage.rootfs, ignore_errors=True)
                    return image
        image = make_image(
            config,
            stage.rootfs,
            layers=tuple(stage.layers),
            history=tuple(stage.history),
            architecture=stage.architecture,
            parent=stage.base.id if stage.base else "",
            base=stage.base_name,
            cache_key=cache_key,
        )
        return self.builder.images.add(image)

    # ------------------------------------------------------------------ FROM and ARG

    def _global_arg(self, instruction: Instruction) -> None:
        for word in expand_words(instruction.rest, self._global_scope(), instruction.escape):
            name, has_default, default = word.partition("=")
            self.consumed.add(name)
            supplied = self.record.buildargs.get(name)
            self.global_args[name] = (
                supplied if supplied is not None else (default if has_default else None)
            )

    def _global_scope(self) -> dict[str, str]:
        return {name: value for name, value in self.global_args.items() if value is not None}

    def _from(self, instruction: Instruction) -> None:
        words = expand_words(instruction.rest, self._global_scope(), instruction.escape)
        if not words:
            raise BuildFailed("FROM requires either one or three arguments")
        name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
        base_text = words[0]
        platform = instruction.flags.get("platform") or self.record.platform or "linux/amd64"
        architecture = platform.split("/")[1] if "/" in platform else "amd64"
        rootfs = self.builder.workspace.new_dir("image-")
        stage_from = next((s for s in self.stages if s.name and s.name == base_text), None)
        if base_text == "scratch":
            base, base_name, config = None, "scratch", ImageConfig()
            self.say(" ---> \n")
        elif stage_from is not None:
            base, base_name = None, stage_from.base_name
            config = copy.deepcopy(stage_from.config)
            clone_tree(stage_from.rootfs, rootfs)
        else:
            base = self._base_image(base_text)
            base_name = parse_reference(base_text).tagged().familiar()
            config = copy.deepcopy(base.config)
            clone_tree(base.rootfs, rootfs)
            self.say(f" ---> {base.short_id}\n")
        stage = Stage(name, rootfs, config, base, base_name, architecture)
        if stage_from is not None:
            stage.layers, stage.history = list(stage_from.layers), list(stage_from.history)
            stage.cache.update(stage_from.cache.hexdigest().encode())
        elif base is not None:
            stage.layers, stage.history = list(base.layers), list(base.history)
        stage.cache.update(f"FROM {base.id if base else base_text} {platform}".encode())
        self.stages.append(stage)

    def _base_image(self, text: str) -> Image:
        try:
            reference = parse_reference(text).tagged()
        except DockerApiError as exc:
            raise BuildFailed(exc.message) from exc
        local = None if self.record.pull else self.builder.images.find(str(reference))
        if local is not None:
            return local
        auth = (self.record.registry_config or {}).get(reference.domain)
        try:
            image, events = self.builder.pull(reference, auth)
        except DockerApiError as exc:
            raise BuildFailed(exc.message) from exc
        if not self.record.quiet:
            self.events.extend(events)
        return image

    def _arg(self, stage: Stage, instruction: Instruction) -> None:
        for word in expand_words(instruction.rest, stage.scope(), instruction.escape):
            name, has_default, default = word.partition("=")
            self.consumed.add(name)
            supplied = self.record.buildargs.get(name)
            if supplied is not None:
                stage.args[name] = supplied
            elif has_default:
                stage.args[name] = default
            else:
                stage.args[name] = self.global_args.get(name)

    # ------------------------------------------------------------------ config

    def _pairs(self, stage: Stage, instruction: Instruction) -> list[tuple[str, str]]:
        """`k=v k2="v 2"`, or the legacy `k some value` form."""
        words = expand_words(instruction.rest, stage.scope(), instruction.escape)
        raw = instruction.rest.split(None, 1)
        if words and "=" not in raw[0]:
            value = expand(raw[1], stage.scope(), instruction.escape) if len(raw) > 1 else ""
            return [(words[0], value)]
        pairs = []
        for word in words:
            name, equals, value = word.partition("=")
            if not equals:
                raise BuildFailed(f"{instruction.keyword} names can not be blank")
            pairs.append((name, value))
        return pairs

    def _env(self, stage: Stage, instruction: Instruction) -> None:
        for name, value in self._pairs(stage, instruction):
            stage.config.set_env(name, value)
        self._metadata(stage, instruction)

    def _label(self, stage: Stage, instruction: Instruction) -> None:
        stage.config.labels.update(self._pairs(stage, instruction))
        self._metadata(stage, instruction)

    def _workdir(self, stage: Stage, instruction: Instruction) -> None:
        path = expand(instruction.rest, stage.scope(), instruction.escape)
        if not path.startswith("/"):
            path = (stage.config.working_dir or "/").rstrip("/") + "/" + path
        stage.config.working_dir = path
        inside(stage.rootfs, path).mkdir(parents=True, exist_ok=True)
        self._metadata(stage, instruction)

    def _user(self, stage: Stage, instruction: Instruction) -> None:
        stage.config.user = expand(instruction.rest, stage.scope(), instruction.escape)
        self._metadata(stage, instruction)

    def _cmd(self, stage: Stage, instruction: Instruction) -> None:
        stage.config.cmd = self._command(stage, instruction)
        self._metadata(stage, instruction)

    def _entrypoint(self, stage: Stage, instruction: Instruction) -> None:
        stage.config.entrypoint = self._command(stage, instruction)
        stage.config.cmd = None  # an ENTRYPOINT resets the CMD inherited from the base
        self._metadata(stage, instruction)

    def _command(self, stage: Stage, instruction: Instruction) -> list[str]:
        if instruction.exec_form is not None:
            return list(instruction.exec_form)
        return [*(stage.config.shell or DEFAULT_SHELL), instruction.rest]

    def _expose(self, stage: Stage, instruction: Instruction) -> None:
        for port in expand_words(instruction.rest, stage.scope(), instruction.escape):
            stage.config.exposed_ports[port if "/" in port else f"{port}/tcp"] = {}
        self._metadata(stage, instruction)

    def _volume(self, stage: Stage, instruction: Instruction) -> None:
        paths = instruction.exec_form or expand_words(
            instruction.rest, stage.scope(), instruction.escape
        )
        stage.config.volumes.update({path: {} for path in paths})
        self._metadata(stage, instruction)

    def _stopsignal(self, stage: Stage, instruction: Instruction) -> None:
        stage.config.stop_signal = expand(instruction.rest, stage.scope(), instruction.escape)
        self._metadata(stage, instruction)

    def _shell(self, stage: Stage, instruction: Instruction) -> None:
        if instruction.exec_form is None:
            raise BuildFailed("SHELL requires the arguments to be in JSON form")
        stage.config.shell = list(instruction.exec_form)
        self._metadata(stage, instruction)

    def _healthcheck(self, stage: Stage, instruction: Instruction) -> None:
        kind, _, command = instruction.rest.partition(" ")
        if kind.upper() == "NONE":
            stage.config.healthcheck = {"Test": ["NONE"]}
        else:
            exec_form = parse_dockerfile(f"CMD {command}")[0].exec_form
            test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
            stage.config.healthcheck = {"Test": test}
        self._metadata(stage, instruction)

    def _onbuild(self, stage: Stage, instruction: Instruction) -> None:
        stage.config.on_build.append(instruction.rest)
        self._metadata(stage, instruction)

    def _metadata(self, stage: Stage, instruction: Instruction) -> None:
        stage.history.append(
            {"created_by": f"/bin/sh -c #(nop)  {instruction.text}", "empty_layer": True}
        )

    # ------------------------------------------------------------------ RUN, COPY, ADD

    def _run(self, stage: Stage, instruction: Instruction) -> None:
        if instruction.exec_form is not None:
            argv = list(instruction.exec_form)
            command = " ".join(argv)
        else:
            argv = [*(stage.config.shell or DEFAULT_SHELL), instruction.rest]
            command = instruction.rest
        self.record.runs.append(command)
        failure = next((f for f in self.builder.failures if f.text in command), None)
        if failure is not None:
            container = secrets.token_hex(6)
            self.say(f" ---> Running in {container}\n")
            for line in failure.output:
                self.say(f"{line}\n")
            raise BuildFailed(
                f"The command '{' '.join(argv)}' returned a non-zero code: {failure.exit_code}",
                code=failure.exit_code,
            )
        digest = hashlib.sha256(f"{stage.cache.hexdigest()} RUN {command}".encode()).hexdigest()
        stage.layers.append(Layer(f"sha256:{digest}", 0))
        stage.history.append({"created_by": " ".join(argv)})

    def _copy(self, stage: Stage, instruction: Instruction) -> None:
        words = instruction.exec_form or expand_words(
            instruction.rest, stage.scope(), instruction.escape
        )
        if len(words) < 2:
            raise BuildFailed(f"{instruction.keyword} requires at least two arguments")
        if any(word.startswith(("http://", "https://")) for word in words[:-1]):
            raise BuildFailed(
                f"{instruction.keyword} failed: the emulator has no network to fetch URLs"
            )
        source = self._copy_source(instruction.flags.get("from"))
        chmod = instruction.flags.get("chmod")
        try:
            copied = copy_into(
                source,
                words[:-1],
                words[-1],
                workdir=stage.config.working_dir,
                rootfs=stage.rootfs,
                chmod=int(chmod, 8) if chmod else None,
                unpack_archives=instruction.keyword == "ADD",
            )
        except (CopyError, ValueError) as exc:
            raise BuildFailed(f"{instruction.keyword} failed: {exc}") from exc
        listing = "".join(f"{f.path}\0{f.sha256}\n" for f in copied)
        stage.cache.update(listing.encode())
        digest = hashlib.sha256(listing.encode()).hexdigest()
        stage.layers.append(Layer(f"sha256:{digest}", sum(f.size for f in copied)))
        stage.history.append({"created_by": f"/bin/sh -c #(nop) {instruction.text}"})

    def _copy_source(self, name: str | None) -> Path:
        if name is None:
            return self.context
        for index, stage in enumerate(self.stages[:-1]):
            if name in (stage.name, str(index)):
                return stage.rootfs
        return self._base_image(name).rootfs
