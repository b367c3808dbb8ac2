"""The bubblewrap command line that confines a managed run's engine and its package installs.

What a confined command sees: the host's filesystem read-only; a new /proc (its own PID
namespace: no other process is visible), a minimal /dev with a private /dev/shm; empty
read-only directories over what it must not read (`hide`: PUSH_POOLS_HOME with the encryption
key, the store and every sandbox, a SQLite file kept elsewhere, the server user's credential
files); and,
bound back at their own paths, only what it needs: writable, its own directories (a run's `work`
and `tmp`); read-only, the interpreter, push_pools and the run's cached environment. IPC, UTS and
cgroup namespaces are its own too; the network is the host's, so the engine reaches the API.

When the server is root the command drops to an unprivileged uid and gid with setpriv, inside
bwrap (bwrap's own `--uid` only renames uid 0 inside a user namespace: the process would still
own, and read, every file root owns). That uid must be able to walk down to every path bound in:
a directory it cannot pass through (/root, mode 0700, on the way to a pyenv interpreter; pytest's
private temp directory) is covered with an empty one, which hides nothing that uid could read,
and what is needed below it is bound back.

Stopping: the sandbox signals the whole process group (bwrap, its PID 1 and the command). bwrap
itself must outlive a SIGTERM so that the command gets its grace period and bwrap reports its
exit status, so bwrap starts with SIGTERM ignored (`preexec`) and `env --default-signal=TERM`
restores it for the command. bwrap reports a command killed by signal n as exit status 128+n, as
shells do; `exit_code` turns that back into -n, as subprocess reports it.

Standard library only: the sandbox process imports this.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["Confinement", "ConfinedInstall", "exit_code", "interpreter_paths", "preexec"]

# Private /dev/shm (multiprocessing needs it writable): capped, since tmpfs pages escape
# RLIMIT_AS. The empty directories over hidden paths need next to nothing.
SHM_BYTES = 64 * 1024 * 1024
COVER_BYTES = 1024 * 1024
# The server user's pip and uv settings an install keeps (relative to its home; see
# ConfinedInstall). Credentials files (.netrc and the like) are deliberately not among them.
INSTALLER_CONFIG = (".pip/pip.conf", ".config/pip/pip.conf", ".config/uv/uv.toml")


@dataclass(frozen=True)
class Confinement:
    """How to run a command confined: the tools found at server start and what to hide."""

    bwrap: str
    env: str
    setpriv: str
    # The uid and gid the command runs as; None keeps the server's (only root can switch).
    uid: int | None = None
    gid: int | None = None
    # Absolute paths, resolved: directories get an empty tmpfs, files /dev/null.
    hide: tuple[str, ...] = ()

    def hiding(self, *paths: str | Path) -> Confinement:
        extra = [os.path.realpath(p) for p in paths]
        return replace(self, hide=tuple(dict.fromkeys([*self.hide, *extra])))

    def to_json(self) -> dict[str, Any]:
        return {
            "bwrap": self.bwrap,
            "env": self.env,
            "setpriv": self.setpriv,
            "uid": self.uid,
            "gid": self.gid,
            "hide": list(self.hide),
        }

    @classmethod
    def from_json(cls, data: object) -> Confinement | None:
        """The confinement a request asks for; None when it asks for none."""
        if not isinstance(data, dict):
            return None
        uid, gid = data.get("uid"), data.get("gid")
        return cls(
            bwrap=str(data["bwrap"]),
            env=str(data["env"]),
            setpriv=str(data["setpriv"]),
            uid=int(uid) if uid is not None else None,
            gid=int(gid) if gid is not None else None,
            hide=tuple(str(p) for p in data.get("hide") or ()),
        )

    # ------------------------------------------------------------------ ownership

    def hand_over(self, directory: Path) -> None:
        """Make a directory the confined uid's own: the only place it may write."""
        if self.uid is not None:
            os.chown(directory, self.uid, self.gid if self.gid is not None else -1)

    def take_back(self, root: Path) -> None:
        """Give a tree the confined uid wrote back to the server's user, read-only for others,
        so that no later run (under that same uid) can change it."""
        if self.uid is None:
            return
        owner, group = os.geteuid(), os.getegid()
        for directory, dirs, files in os.walk(root):
            for path in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
                os.lchown(path, owner, group)
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode):
                    # No set-id bits and no write for group and others.
                    os.chmod(path, stat.S_IMODE(mode) & ~0o6022)

    # ------------------------------------------------------------------ the command line

    def exposable(self, paths: Iterable[str | Path]) -> list[Path]:
        """Those of `paths` outside everything hidden (a run's own directory is never one)."""
        hidden = [Path(p) for p in self.hide]
        kept = []
        for path in paths:
            resolved = Path(os.path.realpath(path))
            if not any(_within(resolved, h) for h in hidden):
                kept.append(resolved)
        return kept

    def command(
        self,
        argv: Sequence[str],
        *,
        writable: Sequence[Path],
        readable: Sequence[Path],
        chdir: Path,
    ) -> list[str]:
        """`argv` wrapped in bwrap (and setpriv): only `writable` may be written to, and
        `readable` stays visible even where it lies under a hidden directory."""
        hidden = [Path(p) for p in self.hide if os.path.lexists(p)]
        rw = _outermost(Path(os.path.realpath(p)) for p in writable)
        # Never bind a directory holding something hidden: that would show it again.
        ro = [
            p
            for p in _outermost(Path(os.path.realpath(p)) for p in readable)
            if p.exists() and not any(_within(h, p) for h in hidden)
        ]
        blocked = self._blocked([*rw, *ro]) if self.uid is not None else []
        covers = _outermost([*(h for h in hidden if h.is_dir()), *blocked])
        args = [
            self.bwrap,
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            # A new private tmpfs (bandit B108 takes it for a shared host temp path).
            "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",  # nosec B108
            "--proc", "/proc",
        ]  # fmt: skip
        for cover in covers:
            args += ["--size", str(COVER_BYTES), "--tmpfs", str(cover)]
        for path in hidden:
            if not path.is_dir() and not any(_within(path, c) for c in covers):
                args += ["--ro-bind", "/dev/null", str(path)]
        binds = [("--ro-bind", p) for p in ro if any(_within(p, c) for c in covers)]
        binds += [("--bind", p) for p in rw]
        made: set[Path] = set()
        # Parents before children: a bind inside another must come after it.
        for option, path in sorted(binds, key=lambda bind: len(bind[1].parts)):
            # bwrap makes missing parents of a bind mode 0700, which only root may pass:
            # made here first, 0755, down from the empty directory covering them.
            for cover in (c for c in covers if c in path.parents):
                for parent in reversed(path.parents):
                    if cover in parent.parents and parent not in made:
                        args += ["--perms", "0755", "--dir", str(parent)]
                        made.add(parent)
            args += [option, str(path), str(path)]
        # Last, once everything inside is bound: a run that is not root owns its tmpfs covers,
        # and a write there would seem to succeed (into memory, lost at the end).
        for cover in covers:
            args += ["--remount-ro", str(cover)]
        args += ["--chdir", str(chdir)]
        drop: list[str] = []
        if self.uid is not None:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            gid = self.gid if self.gid is not None else self.uid
            drop = [
                f"--reuid={self.uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]
        return [
            *args,
            "--",
            self.env,
            "--default-signal=TERM",
            "--",
            self.setpriv,
            *drop,
            "--no-new-privs",
            "--",
            *argv,
        ]

    def _blocked(self, paths: Iterable[Path]) -> list[Path]:
        """For each path, the topmost directory above it the confined uid cannot pass."""
        if self.uid is None:  # the server's own uid passes wherever the server does
            return []
        uid, gid = self.uid, self.gid if self.gid is not None else self.uid
        found = []
        for path in paths:
            for parent in reversed(path.parents):
                if not _passable(parent, uid, gid):
                    found.append(parent)
                    break
        return found


@dataclass(frozen=True)
class ConfinedInstall:
    """A package install for a run, confined like the run itself (see environments.py).

    The installer (and any package's build code) runs as the run's uid and writes only into the
    new environment and `home`, its HOME and TMPDIR (a directory of the run, removed after). The
    built tree is then handed back to the server's user, and runs only ever see it read-only.
    The server user's pip and uv configuration files are copied into `home`, so installs use
    the same indexes as before; index credentials kept there are visible to the install.
    """

    confinement: Confinement
    home: Path
    readable: tuple[Path, ...]

    def prepare(self, build: Path) -> None:
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.confinement.hand_over(self.home)
        self._copy_configuration()
        build.mkdir(mode=0o755)
        self.confinement.hand_over(build)

    def command(self, argv: list[str], build: Path) -> list[str]:
        readable = list(self.readable)
        if os.path.isabs(argv[0]):
            readable += self.confinement.exposable([Path(os.path.realpath(argv[0])).parent])
        return self.confinement.command(
            argv, writable=[build, self.home], readable=readable, chdir=self.home
        )

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        home = str(self.home)
        return {
            **env,
            "HOME": home,
            "TMPDIR": home,
            "XDG_CACHE_HOME": os.path.join(home, ".cache"),
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
        }

    def release(self, build: Path) -> None:
        self.confinement.take_back(build)
        shutil.rmtree(self.home, ignore_errors=True)

    def _copy_configuration(self) -> None:
        user_home = Path(os.environ.get("HOME") or Path.home())
        config_home = os.environ.get("XDG_CONFIG_HOME")
        sources = {name: user_home / name for name in INSTALLER_CONFIG}
        if config_home:
            sources[".config/pip/pip.conf"] = Path(config_home) / "pip" / "pip.conf"
            sources[".config/uv/uv.toml"] = Path(config_home) / "uv" / "uv.toml"
        for name, source in sources.items():
            try:
                text = source.read_bytes()
            except OSError:
                continue
            target = self.home / name
            for directory in reversed(target.relative_to(self.home).parents):
                if str(directory) != ".":
                    (self.home / directory).mkdir(mode=0o700, exist_ok=True)
                    self.confinement.hand_over(self.home / directory)
            target.write_bytes(text)
            self.confinement.hand_over(target)


def interpreter_paths() -> list[Path]:
    """What running this interpreter and importing push_pools with it reads: its prefixes, its
    executable's directory, every existing sys.path entry and the directory holding push_pools."""
    names = [
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        str(Path(__file__).resolve().parent.parent.parent),
        *sys.path,
    ]
    paths = [Path(os.path.realpath(n)) for n in names if n]
    return _outermost(p for p in paths if p.exists())


def preexec() -> None:
    """In bwrap's process before exec: survive the group's SIGTERM (see the module docstring)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def exit_code(status: int) -> int:
    """bwrap's exit status as subprocess would report the command's: -n for signal n."""
    if status > 128 and status - 128 < signal.NSIG:
        return -(status - 128)
    return status


def _within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """Sorted, without duplicates, and without any path that lies inside another."""
    unique = sorted(set(paths), key=lambda p: (len(p.parts), str(p)))
    kept: list[Path] = []
    for path in unique:
        if not any(_within(path, k) for k in kept):
            kept.append(path)
    return kept


def _passable(directory: Path, uid: int, gid: int) -> bool:
    """Whether `uid` (with only `gid`) may look up names in `directory` (ACLs aside)."""
    try:
        info = os.stat(directory)
    except OSError:
        return False
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)
