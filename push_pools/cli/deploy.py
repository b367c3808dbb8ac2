"""`push-pools deploy`: register deployments from push-pools.yaml or from command-line options.

With a project file in the working directory, `deploy -n NAME` deploys that entry and `--all`
deploys every entry; options given on the command line override the file's values. Without one,
ENTRYPOINT, --name and --pool say everything; a terminal user who leaves some out is asked.

Only typer and the standard library are imported at module level: main.py imports this module
for every `push-pools` command, including `--help`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from push_pools.client import Client
    from push_pools.deploy.project import DeploymentSpec, ProjectFile
    from push_pools.deploy.sdk import Applied
    from push_pools.flows import Flow

DEFAULT_FILE = "push-pools.yaml"


@dataclass(frozen=True)
class Overrides:
    """What the command line says about one deployment, on top of (or instead of) the file."""

    pool: str | None = None
    queue: str | None = None
    cron: str | None = None
    interval: str | None = None
    timezone: str | None = None
    params: list[str] = field(default_factory=list)
    job_variables: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    paused: bool = False

    def given(self) -> list[str]:
        """The options that were set, spelt as on the command line."""
        flags = {
            "--pool": self.pool,
            "--queue": self.queue,
            "--cron": self.cron,
            "--interval": self.interval,
            "--timezone": self.timezone,
            "--param": self.params,
            "--job-variable": self.job_variables,
            "--tag": self.tags,
            "--description": self.description,
            "--paused": self.paused,
        }
        return [flag for flag, value in flags.items() if value]


def deploy(
    entrypoint: Annotated[
        str | None,
        typer.Argument(
            help="The flow to deploy, as path/to/file.py:function_name. Optional when the "
            "project file names it.",
            show_default=False,
        ),
    ] = None,
    names: Annotated[
        list[str] | None,
        typer.Option(
            "--name",
            "-n",
            metavar="NAME",
            help="Deployment name; with a project file, the entry to deploy ('flow/name' picks "
            "one of several with the same name). Repeatable.",
            show_default=False,
        ),
    ] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", "-p", metavar="POOL", help="Work pool to send runs to.")
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue", "-q", metavar="QUEUE", help="Work queue in the pool (default: default)."
        ),
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", metavar="CRON", help="Cron schedule, e.g. '0 9 * * *'.")
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval", metavar="SECONDS", help="Interval schedule in seconds (or e.g. 15m, 2h)."
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", metavar="TZ", help="IANA timezone of the schedule, e.g. Europe/Paris."
        ),
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="KEY=VALUE",
            help="Default flow parameter; VALUE is read as JSON when it parses. Repeatable.",
        ),
    ] = None,
    job_variables: Annotated[
        list[str] | None,
        typer.Option(
            "--job-variable",
            metavar="KEY=VALUE",
            help="Job variable overriding the pool's default; VALUE is read as JSON when it "
            'parses, e.g. env=\'{"A": "1"}\'. Repeatable.',
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option(
            "--tag", "-t", metavar="TAG", help="Tag (replaces the file's tags). Repeatable."
        ),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="Description.")
    ] = None,
    paused: Annotated[
        bool, typer.Option("--paused", help="Create it paused: its schedules make no runs.")
    ] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Deploy every deployment in the project file.")
    ] = False,
    project_file: Annotated[
        Path | None,
        typer.Option(
            "--prefect-file",
            "--file",
            metavar="FILE",
            help=f"Project file (default: ./{DEFAULT_FILE}, or ./prefect.yaml if only that "
            "exists).",
            show_default=False,
        ),
    ] = None,
    no_prompt: Annotated[
        bool, typer.Option("--no-prompt", help="Never ask; fail when an option is missing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the deployments as a JSON list, for scripts.")
    ] = False,
    bundle: Annotated[
        bool | None,
        typer.Option(
            "--bundle/--no-bundle",
            help="Upload the project directory as a code bundle that runs download (default: "
            "yes for push, managed and docker pools, whose runs cannot see this machine's files; "
            "respects .gitignore and .pushpoolsignore). Only without pull steps of your own.",
            show_default=False,
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="NAME",
            help="Build the project into this image (e.g. acme/flows:v1) and push it; runs use "
            "the pushed digest and the code inside it. Without a registry in NAME, it goes to "
            "the registry --provision-infra made for the pool.",
            show_default=False,
        ),
    ] = None,
    dockerfile: Annotated[
        str,
        typer.Option(
            "--dockerfile",
            metavar="auto|PATH",
            help="With --image: the project's Dockerfile, or 'auto' to generate one that "
            "installs push-pools and requirements.txt.",
        ),
    ] = "Dockerfile",
    no_push: Annotated[
        bool,
        typer.Option("--no-push", help="With --image: build only; runs use the local tag."),
    ] = False,
) -> None:
    """Create or update deployments: a flow, a work pool, parameters, and schedules."""
    from push_pools.cli.output import parse_key_values

    overrides = Overrides(
        pool=pool,
        queue=queue,
        cron=cron,
        interval=interval,
        timezone=timezone,
        params=list(params or []),
        job_variables=parse_key_values(job_variables, "--job-variable"),
        tags=list(tags or []),
        description=description,
        paused=paused,
    )
    interactive = not no_prompt and sys.stdin.isatty()
    run = DeployCommand(
        entrypoint=entrypoint,
        names=list(names or []),
        overrides=overrides,
        deploy_all=all_,
        project=_find_project(project_file, as_json),
        interactive=interactive,
        as_json=as_json,
        bundle=bundle,
        image=_image_option(image, dockerfile, no_push),
    )
    run.execute()


def _image_option(name: str | None, dockerfile: str, no_push: bool) -> ImageOption | None:
    from push_pools.errors import InvalidInput

    if name is None:
        if dockerfile != "Dockerfile" or no_push:
            raise InvalidInput("--dockerfile and --no-push go with --image NAME")
        return None
    return ImageOption(name, dockerfile, push=not no_push)


@dataclass(frozen=True)
class ImageOption:
    """--image and its companions."""

    name: str
    dockerfile: str
    push: bool


def _find_project(explicit: Path | None, as_json: bool) -> ProjectFile | None:
    from push_pools.deploy.project import PREFECT_FILE, load_project

    if explicit is not None:
        return load_project(explicit)  # asked for by name: a missing file is an error
    default = Path(DEFAULT_FILE)
    if default.is_file():
        return load_project(default)
    if Path(PREFECT_FILE).is_file():
        # Lets a Prefect project be deployed here before its file is renamed.
        _note(f"no {DEFAULT_FILE} here; reading {PREFECT_FILE}", as_json)
        return load_project(Path(PREFECT_FILE))
    return None


def _note_plain(message: str, as_json: bool) -> None:
    from rich.console import Console

    Console(stderr=as_json, highlight=False).print(message, markup=False)


def _note(message: str, as_json: bool) -> None:
    from rich.console import Console

    # Notes go to stderr under --json, so stdout stays one parseable document.
    Console(stderr=as_json, highlight=False).print(f"[yellow]{message}[/yellow]")


class DeployCommand:
    """One `deploy` invocation: pick the deployments, check them, build, push, upsert, report."""

    def __init__(
        self,
        *,
        entrypoint: str | None,
        names: list[str],
        overrides: Overrides,
        deploy_all: bool,
        project: ProjectFile | None,
        interactive: bool,
        as_json: bool,
        bundle: bool | None = None,
        image: ImageOption | None = None,
    ) -> None:
        self.entrypoint = entrypoint
        self.bundle = bundle
        self.image = image
        # Pool types by name, read by check_pools: they decide whether code goes in a bundle.
        self._pool_types: dict[str, str] = {}
        self.names = names
        self.overrides = overrides
        self.deploy_all = deploy_all
        self.project = project
        self.interactive = interactive
        self.as_json = as_json
        self.directory = project.directory if project else Path.cwd().resolve()
        # Flows loaded in this invocation, by entrypoint: a file with several deployments of
        # one flow is imported once.
        self._flows: dict[str, Flow[Any, Any]] = {}
        self._client: Client | None = None
        # Set when the wizard made the deployment, so it can offer to save it afterwards.
        self._wizard_spec: DeploymentSpec | None = None
        # repository:tag an --image (or the wizard's image) went to, for saving it.
        self._image_reference: str | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from push_pools.client import Client

            self._client = Client(stdlib_http=True)
        return self._client

    def execute(self) -> None:
        try:
            specs = self.select()
            prepared = [self.prepare(spec) for spec in specs]
            self.check_pools(prepared)
            outputs_by_spec = self.run_build_and_push(prepared)
            from push_pools.deploy.sdk import apply_deployment

            bodies = [
                self.with_code(spec, self.body(spec, flow, outputs))
                for (spec, flow), outputs in zip(prepared, outputs_by_spec, strict=True)
            ]
            # The server checks every deployment before any is saved: one bad entry in a
            # project file deploys none of them.
            for body in bodies:
                self.client.validate_deployment(body)
            applied = []
            for body in bodies:
                result = apply_deployment(body, self.client)
                applied.append(result)
                if not self.as_json:
                    self.report(result)
            if self.as_json:
                from push_pools.cli.output import print_json

                print_json([a.deployment for a in applied])
            self.offer_to_save()
        finally:
            if self._client is not None:
                self._client.close()

    # --- choosing what to deploy -----------------------------------------------------------

    def select(self) -> list[DeploymentSpec]:
        from push_pools.errors import InvalidInput

        project = self.project
        if project is None:
            if self.deploy_all:
                raise InvalidInput(
                    f"--all deploys every deployment of a project file, but there is no "
                    f"{DEFAULT_FILE} here; pass --file PATH, or deploy one flow with "
                    "ENTRYPOINT -n NAME -p POOL"
                )
            return [self.ad_hoc(self.names[0] if self.names else None, multiple=len(self.names))]

        file_name = project.path.name if project.path else DEFAULT_FILE
        if self.deploy_all:
            if self.names or self.entrypoint:
                raise InvalidInput(
                    f"--all deploys every deployment in {file_name}; drop -n/--name and ENTRYPOINT"
                )
            if self.overrides.given():
                raise InvalidInput(
                    f"{', '.join(self.overrides.given())} apply to one deployment; with --all, "
                    f"change {file_name} instead, or deploy one with -n NAME"
                )
            if not project.deployments:
                raise InvalidInput(f"{file_name} has no deployments: add some under deployments:")
            return [self.with_overrides(d) for d in project.deployments]

        if len(self.names) > 1 and self.overrides.given():
            raise InvalidInput(
                f"{', '.join(self.overrides.given())} apply to one deployment; "
                "deploy one -n NAME at a time to override its values"
            )
        if self.names:
            specs: list[DeploymentSpec] = []
            for name in self.names:
                matches = self.match(name)
                if matches:
                    specs.extend(
                        self.with_overrides(m, entrypoint=self.entrypoint) for m in matches
                    )
                elif self.entrypoint:
                    specs.append(self.ad_hoc(name))
                else:
                    raise InvalidInput(
                        f"no deployment named {name!r} in {file_name}; it has: "
                        f"{self.listing()}. To create a new one, pass its ENTRYPOINT too"
                    )
            return specs

        if self.entrypoint:
            wanted = self.project_entrypoint(self.entrypoint)
            same = [d for d in project.deployments if d.entrypoint == wanted]
            if len(same) == 1:
                return [self.with_overrides(same[0])]
            if len(same) > 1 and not self.interactive:
                raise InvalidInput(
                    f"{file_name} has several deployments of {self.entrypoint}: "
                    f"{', '.join(d.name for d in same)}; pick one with -n NAME, or use --all"
                )
            if len(same) > 1:
                return [self.with_overrides(self.choose_entry(same))]
            return [self.ad_hoc(None)]

        if len(project.deployments) == 1:
            return [self.with_overrides(project.deployments[0])]
        if not project.deployments:
            return [self.ad_hoc(None)]
        if not self.interactive:
            raise InvalidInput(
                f"{file_name} has several deployments ({self.listing()}); "
                "pick one with -n NAME, or deploy them all with --all"
            )
        return [self.with_overrides(self.choose_entry(project.deployments))]

    def listing(self) -> str:
        project = self.project
        return ", ".join(d.name for d in project.deployments) if project else ""

    def match(self, name: str) -> list[DeploymentSpec]:
        """Entries called `name`, or `flow/name` (the flow's name read from its code)."""
        from push_pools.errors import InvalidInput

        project = self.project
        if project is None:
            return []
        flow_name, sep, short = name.rpartition("/")
        if not sep:
            matches = project.find(name)
            if len(matches) > 1:
                full = ", ".join(
                    f"{self.flow_of(m.entrypoint).name}/{m.name}" for m in matches if m.entrypoint
                )
                raise InvalidInput(
                    f"several deployments are named {name!r} ({full}); "
                    "pick one with -n 'flow-name/name'"
                )
            return matches
        return [
            m
            for m in project.find(short)
            if (m.flow_name or (self.flow_of(m.entrypoint).name if m.entrypoint else None))
            == flow_name
        ]

    def choose_entry(self, entries: list[DeploymentSpec]) -> DeploymentSpec:
        from rich.prompt import IntPrompt

        out = _console()
        out.print("Which deployment?")
        for number, entry in enumerate(entries, start=1):
            out.print(f"  {number}. {entry.name}  [dim]{entry.entrypoint or ''}[/dim]")
        choice = IntPrompt.ask(
            "Number", choices=[str(n) for n in range(1, len(entries) + 1)], default=1
        )
        return entries[choice - 1]

    def ad_hoc(self, name: str | None, multiple: int = 1) -> DeploymentSpec:
        """A deployment described only on the command line (or in answers to the wizard)."""
        from push_pools.deploy.project import DeploymentSpec
        from push_pools.errors import InvalidInput

        if multiple > 1:
            raise InvalidInput(
                "several -n/--name values need a project file that defines them; "
                "deploy one name at a time"
            )
        entrypoint, pool = self.entrypoint, self.overrides.pool
        missing = [
            option
            for option, value in (("ENTRYPOINT", entrypoint), ("--name", name), ("--pool", pool))
            if not value
        ]
        overrides = self.overrides
        if missing:
            if not self.interactive:
                project_path = self.project.path if self.project else None
                where = f" (and it is not an entry of {project_path.name})" if project_path else ""
                raise InvalidInput(
                    f"missing {', '.join(missing)}{where}: "
                    "push-pools deploy path/to/file.py:flow_function -n NAME -p POOL"
                )
            entrypoint, name, overrides = self.wizard(entrypoint, name, overrides)
        spec = DeploymentSpec(name=name or "")
        spec = self.with_overrides(spec, entrypoint=entrypoint, overrides=overrides)
        if missing:
            self._wizard_spec = spec
        return spec

    def with_overrides(
        self,
        spec: DeploymentSpec,
        entrypoint: str | None = None,
        overrides: Overrides | None = None,
    ) -> DeploymentSpec:
        """The entry with the command line's values put over the file's."""
        from push_pools.deploy.project import ScheduleSpec, WorkPoolSpec
        from push_pools.errors import InvalidInput

        o = overrides or self.overrides
        update: dict[str, Any] = {}
        if entrypoint:
            update["entrypoint"] = self.project_entrypoint(entrypoint)
        if o.pool or o.queue or o.job_variables:
            current = spec.work_pool
            if o.pool and (current is None or current.name != o.pool):
                # The file's queue belongs to the file's pool; in another pool use the default.
                current = WorkPoolSpec(
                    name=o.pool,
                    job_variables=current.job_variables if current else {},
                )
            if current is None:
                raise InvalidInput(
                    f"deployment {spec.name!r} has no work pool for --queue/--job-variable; "
                    "pass -p POOL"
                )
            update["work_pool"] = current.model_copy(
                update={
                    "work_queue_name": o.queue or current.work_queue_name,
                    # Merged key by key: one --job-variable should not drop the file's others.
                    "job_variables": {**current.job_variables, **o.job_variables},
                }
            )
        if o.cron or o.interval:
            if o.cron and o.interval:
                raise InvalidInput("give --cron or --interval, not both")
            update["schedules"] = [
                ScheduleSpec(cron=o.cron, interval=o.interval, timezone=o.timezone)
            ]
            update["schedule"] = None
        elif o.timezone:
            schedules = spec.all_schedules()
            if not schedules:
                raise InvalidInput(
                    f"--timezone applies to a schedule, and deployment {spec.name!r} has none; "
                    "add --cron or --interval"
                )
            update["schedules"] = [s.model_copy(update={"timezone": o.timezone}) for s in schedules]
            update["schedule"] = None
        if o.tags:
            update["tags"] = list(o.tags)
        if o.description is not None:
            update["description"] = o.description
        if o.paused:
            update["paused"] = True
        if o.params:
            target = update.get("entrypoint") or spec.entrypoint
            # The flow's schema decides how each value is read: "123" stays text for a str.
            schema = self.flow_of(target).parameter_schema() if target else {}
            from push_pools.cli.params import parse_params

            parsed = parse_params(o.params, schema.get("properties") or {})
            update["parameters"] = {**spec.parameters, **parsed}
        return spec.model_copy(update=update)

    # --- the wizard -------------------------------------------------------------------------

    def wizard(
        self, entrypoint: str | None, name: str | None, overrides: Overrides
    ) -> tuple[str, str, Overrides]:
        from rich.prompt import Confirm, Prompt

        from push_pools.errors import InvalidInput

        out = _console()
        if not entrypoint:
            from push_pools.deploy.entrypoints import find_flows

            found = find_flows(Path.cwd())
            if not found:
                raise InvalidInput(
                    f"no @flow functions found under {Path.cwd()}; pass the ENTRYPOINT "
                    "(path/to/file.py:function_name)"
                )
            entrypoint = _pick(out, "Which flow?", found)
        if not name:
            default = entrypoint.rpartition(":")[2].replace("_", "-")
            name = Prompt.ask("Deployment name", default=default).strip()
        update: dict[str, Any] = {
            "params": overrides.params
            + self.ask_required_params(self.project_entrypoint(entrypoint), overrides.params)
        }
        if not overrides.pool:
            pools = [p["name"] for p in self.client.list_work_pools()]
            if not pools:
                raise InvalidInput(
                    "there are no work pools yet: create one with "
                    "`push-pools work-pool create NAME --type process`, then deploy again"
                )
            update["pool"] = _pick(out, "Which work pool?", pools)
        if not (overrides.cron or overrides.interval) and Confirm.ask(
            "Run it on a cron schedule?", default=False
        ):
            update["cron"], update["timezone"] = _ask_cron(overrides.timezone)
        self.ask_image(update.get("pool") or overrides.pool or "", name)
        return entrypoint, name, _replace(overrides, **update)

    def ask_image(self, pool_name: str, deployment_name: str) -> None:
        """The tutorials' "build a custom Docker image?", for a pool whose runs are containers.

        A docker pool's worker needs an image with the code (yes by default, kept local by
        default); a push pool runs a code bundle on the stock image without one (no by default),
        and its image must go to a registry the cloud can pull from (push by default)."""
        from rich.prompt import Confirm, Prompt

        if self.image is not None or not pool_name:
            return
        pool = self.client.get_work_pool(pool_name)
        variables = (pool.get("base_job_template") or {}).get("variables") or {}
        if "image" not in (variables.get("properties") or {}):
            return  # process and managed pools run no images
        local_engine = pool.get("type") == "docker"
        question = "Build a custom Docker image for this deployment?"
        wanted = Confirm.ask(question, default=local_engine)
        if not wanted:
            return
        from push_pools.deploy.images import split_tag

        image_name = ""
        while not image_name:
            image_name = Prompt.ask(
                "Image name (repository, e.g. acme/flows; without a registry it goes to the "
                "pool's registry when --provision-infra made one)",
                default=deployment_name,
            ).strip()
        image_name, typed_tag = split_tag(image_name)
        tag = typed_tag or Prompt.ask("Image tag", default="latest").strip() or "latest"
        has_dockerfile = (self.directory / "Dockerfile").is_file()
        dockerfile = Prompt.ask(
            "Dockerfile (a path, or 'auto' to generate one that installs push-pools and "
            "requirements.txt)",
            default="Dockerfile" if has_dockerfile else "auto",
        ).strip()
        push = Confirm.ask("Push this image to a remote registry?", default=not local_engine)
        self.image = ImageOption(f"{image_name}:{tag}", dockerfile, push=push)

    def ask_required_params(self, entrypoint: str, given: list[str]) -> list[str]:
        """Ask for the flow's required parameters that no --param gave, as KEY=VALUE items."""
        from rich.prompt import Prompt

        schema = self.flow_of(entrypoint).parameter_schema()
        have = {pair.partition("=")[0] for pair in given}
        answers = []
        for key in schema.get("required") or []:
            if key in have:
                continue
            kind = (schema.get("properties") or {}).get(key, {}).get("type", "JSON")
            value = Prompt.ask(f"Value for required parameter '{key}' ({kind})")
            answers.append(f"{key}={value}")
        return answers

    def offer_to_save(self) -> None:
        spec = self._wizard_spec
        if spec is None or not self.interactive:
            return
        if self.image is not None:
            spec = self.with_image_steps(spec, self.image)
        from rich.prompt import Confirm

        from push_pools.deploy.project import save_deployment

        path = self.project.path if self.project and self.project.path else Path(DEFAULT_FILE)
        warning = " (its comments will not be kept)" if path.is_file() else ""
        if Confirm.ask(f"Save this deployment to {path.name}{warning}?", default=True):
            save_deployment(path, spec)
            _console().print(f"Saved. Next time: push-pools deploy -n {spec.name}", markup=False)

    def with_image_steps(self, spec: DeploymentSpec, image: ImageOption) -> DeploymentSpec:
        """The wizard's image as the project file's build (and push) steps, so the next
        `deploy -n NAME` builds the same image; the name is the one the image went to (the
        pool's registry, when the wizard's name had none)."""
        from push_pools.deploy.images import split_tag
        from push_pools.deploy.project import WorkPoolSpec

        repository, tag = split_tag(self._image_reference or image.name)
        build = [
            {
                "build_docker_image": {
                    "id": "build-image",
                    "image_name": repository,
                    "tag": tag or "latest",
                    "dockerfile": image.dockerfile,
                }
            }
        ]
        push = [
            {
                "push_docker_image": {
                    "id": "push-image",
                    "image_name": "{{ build-image.image_name }}",
                    "tag": "{{ build-image.tag }}",
                }
            }
        ]
        runs_use = "{{ push-image.image }}" if image.push else "{{ build-image.image }}"
        pool = spec.work_pool or WorkPoolSpec(name=self.overrides.pool or "")
        job_variables = {**pool.job_variables, "image": runs_use}
        return spec.model_copy(
            update={
                "build": build,
                "push": push if image.push else None,
                "work_pool": pool.model_copy(update={"job_variables": job_variables}),
            }
        )

    # --- checking and building ---------------------------------------------------------------

    def flow_of(self, entrypoint: str) -> Flow[Any, Any]:
        from push_pools.deploy.entrypoints import load_flow

        if entrypoint not in self._flows:
            self._flows[entrypoint] = load_flow(entrypoint, self.directory)
        return self._flows[entrypoint]

    def prepare(self, spec: DeploymentSpec) -> tuple[DeploymentSpec, Flow[Any, Any]]:
        """Load the flow (before any build step, so a wrong entrypoint fails fast)."""
        from push_pools.errors import InvalidInput

        if not spec.entrypoint:
            raise InvalidInput(
                f"deployment {spec.name!r} has no entrypoint: add `entrypoint: "
                "path/to/file.py:function` to it, or pass ENTRYPOINT"
            )
        if spec.work_pool is None:
            raise InvalidInput(
                f"deployment {spec.name!r} has no work pool: add `work_pool: {{name: POOL}}` "
                "to it, or pass -p POOL"
            )
        flow = self.flow_of(spec.entrypoint)
        if spec.flow_name and spec.flow_name != flow.name:
            _note(
                f"deployment {spec.name!r}: flow_name {spec.flow_name!r} differs from the "
                f"flow's own name {flow.name!r}; it is filed under {flow.name!r}",
                self.as_json,
            )
        return spec, flow

    def project_entrypoint(self, entrypoint: str) -> str:
        """A command-line entrypoint (relative to the working directory) made relative to the
        project directory, where runs load it from (the file's own are relative to it already).
        """
        if self.directory == Path.cwd().resolve():
            return entrypoint
        from push_pools.deploy.entrypoints import split_entrypoint
        from push_pools.errors import InvalidInput

        path_text, function_name = split_entrypoint(entrypoint)
        path = Path(path_text).expanduser()
        absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
        try:
            relative = absolute.relative_to(self.directory)
        except ValueError:
            raise InvalidInput(
                f"entrypoint {entrypoint!r} is outside the project directory {self.directory}; "
                "runs load flows from there"
            ) from None
        return f"{relative.as_posix()}:{function_name}"

    def check_pools(self, prepared: list[tuple[DeploymentSpec, Any]]) -> None:
        # Before the build steps: a misspelt pool should not cost a ten-minute image build.
        for pool_name in sorted({spec.work_pool.name for spec, _ in prepared if spec.work_pool}):
            self._pool_types[pool_name] = str(self.client.get_work_pool(pool_name)["type"])

    def with_code(self, spec: DeploymentSpec, body: dict[str, Any]) -> dict[str, Any]:
        """The body with the project's code in an image (--image, or a build_docker_image
        step) or a bundle."""
        if self.image is None:
            project = self.project
            own_pull = spec.pull if spec.pull is not None else (project.pull if project else None)
            build = spec.build if spec.build is not None else (project.build if project else None)
            if own_pull is None and not self.bundle and _builds_an_image(build):
                # The code is in the image the build step made: runs start in its workdir.
                return {**body, "pull_steps": [], "path": None}
            return self.with_bundle(spec, body)
        from push_pools.deploy.images import DeploymentImage, check_pool_runs_images, ship_image
        from push_pools.errors import InvalidInput

        if self.bundle:
            raise InvalidInput("--image puts the code in the image: drop --bundle")
        if body.get("work_pool_name"):
            check_pool_runs_images(self.client, body["work_pool_name"])
        project = self.project
        own_pull = spec.pull if spec.pull is not None else (project.pull if project else None)
        with _stdout_to_stderr(self.as_json):
            shipped = ship_image(
                DeploymentImage(self.image.name, dockerfile=self.image.dockerfile),
                self.directory,
                entrypoint=body["entrypoint"],
                push=self.image.push,
                api=self.client,
                pool_name=body.get("work_pool_name"),
                warn=lambda message: _note(f"Warning: {message}", True),
            )
        _note_plain(shipped.describe(), self.as_json)
        self._image_reference = shipped.reference
        job_variables = {**(body.get("job_variables") or {}), "image": shipped.image}
        # Runs start in the image's working directory, where the code is.
        pull = body["pull_steps"] if own_pull is not None else []
        return {**body, "job_variables": job_variables, "pull_steps": pull, "path": None}

    def with_bundle(self, spec: DeploymentSpec, body: dict[str, Any]) -> dict[str, Any]:
        """The body with the project's code bundled, when wanted: only where the runs would
        otherwise move to this machine's directory (no pull steps of the deployment's own)."""
        from push_pools.errors import InvalidInput

        project = self.project
        own_pull = spec.pull if spec.pull is not None else (project.pull if project else None)
        if own_pull is not None:
            if self.bundle:
                raise InvalidInput(
                    f"deployment {spec.name!r} has pull steps of its own; --bundle replaces "
                    "only the default one: drop `pull:` from it, or drop --bundle"
                )
            return body
        from push_pools.deploy.shipping import bundle_body

        pool_type = self._pool_types.get(body.get("work_pool_name") or "")
        new_body, shipped = bundle_body(
            body, self.directory, self.client, bundle=self.bundle, pool_type=pool_type
        )
        if shipped is not None:
            _note_plain(shipped.describe(), self.as_json)
        return new_body

    def run_build_and_push(
        self, prepared: list[tuple[DeploymentSpec, Any]]
    ) -> list[dict[str, dict[str, Any]]]:
        """Run each distinct build + push once; return the step outputs for each deployment."""
        from push_pools.deploy.steps import execute_steps

        project = self.project
        results: dict[str, dict[str, dict[str, Any]]] = {}
        per_spec = []
        for spec, _ in prepared:
            build = spec.build if spec.build is not None else (project.build if project else None)
            push = spec.push if spec.push is not None else (project.push if project else None)
            key = json.dumps([build, push], sort_keys=True, default=str)
            if key not in results:
                outputs: dict[str, dict[str, Any]] = {}
                if build or push:
                    with _stdout_to_stderr(self.as_json):
                        built = execute_steps(build, self.directory, "build")
                        pushed = execute_steps(push, built.directory, "push", built.outputs)
                    outputs = pushed.outputs
                results[key] = outputs
            per_spec.append(results[key])
        return per_spec

    def body(
        self,
        spec: DeploymentSpec,
        flow: Flow[Any, Any],
        outputs: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        from push_pools.deploy.sdk import build_deployment
        from push_pools.deploy.steps import PREFIX, resolve_templates

        project = self.project
        pull = spec.pull if spec.pull is not None else (project.pull if project else None)
        path: str | None = None
        if pull is None:
            pull = [{PREFIX + "set_working_directory": {"directory": str(self.directory)}}]
            path = str(self.directory)
        else:
            # Build outputs (an image tag...) are known now; the pull steps' own references
            # and environment variables are filled in when each run starts.
            pull = resolve_templates(pull, outputs, strict=False, environment=False, where="pull")
        where = f"deployment {spec.name!r}"
        work_pool = spec.work_pool
        return build_deployment(
            flow,
            spec.name,
            work_pool.name if work_pool else None,
            work_queue_name=work_pool.work_queue_name if work_pool else None,
            job_variables=resolve_templates(
                work_pool.job_variables if work_pool else {}, outputs, strict=False, where=where
            ),
            schedules=[s.to_api() for s in spec.all_schedules()],
            parameters=resolve_templates(spec.parameters, outputs, strict=False, where=where),
            tags=spec.tags,
            description=spec.description,
            paused=spec.paused,
            entrypoint=spec.entrypoint,
            source_dir=self.directory,
            pull_steps=pull,
            path=path,
        )

    # --- output -------------------------------------------------------------------------------

    def report(self, applied: Applied) -> None:
        from push_pools.deploy.summary import print_summary

        print_summary(applied.deployment, created=applied.created)


def _builds_an_image(steps: list[dict[str, Any]] | None) -> bool:
    from push_pools.deploy.steps import parse_steps

    return any(step.spec.name == "build_docker_image" for step in parse_steps(steps, "build"))


def _replace(overrides: Overrides, **changes: Any) -> Overrides:
    import dataclasses

    return dataclasses.replace(overrides, **changes)


def _console() -> Any:
    from push_pools.cli.output import console

    return console()


def _pick(out: Any, question: str, options: list[str]) -> str:
    from rich.prompt import IntPrompt

    if len(options) == 1:
        out.print(f"{question} {options[0]}", markup=False)
        return options[0]
    out.print(question)
    for number, option in enumerate(options, start=1):
        out.print(f"  {number}. {option}", markup=False)
    choice = IntPrompt.ask("Number", choices=[str(n) for n in range(1, len(options) + 1)])
    return options[choice - 1]


def _ask_cron(timezone: str | None) -> tuple[str, str]:
    from rich.prompt import Prompt

    from push_pools.errors import InvalidInput

    out = _console()
    while True:
        cron = Prompt.ask("Cron expression (minute hour day month weekday)", default="0 9 * * *")
        zone = Prompt.ask("Timezone", default=timezone or "UTC")
        try:
            from push_pools.schedules import parse_schedule
        except ImportError:  # pragma: no cover - the server checks it anyway
            return cron, zone
        try:
            parse_schedule(cron=cron, timezone=zone)
        except InvalidInput as exc:
            out.print(f"[red]{exc.message}[/red]; try again")
            continue
        return cron, zone


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    # Under --json, build output must not mix into the JSON document on stdout.
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield
