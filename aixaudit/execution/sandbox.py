"""Run a command on a copy-on-write copy of a checkout, shut off from everything else.

A repository's tests are code we did not write, run on code a model wrote: they must not be
able to damage the machine, reach the network or run forever. Each run gets

- an overlayfs copy of the checkout (the checkout is the read-only lower layer; files the run
  writes, and the changes it was asked to apply, land in a private upper layer);
- new mount, network and PID namespaces (`unshare`): only a loopback device that is down, the
  whole root file system remounted read-only, fresh tmpfs on /tmp, /dev/shm and the home
  directory, and every process of the run killed with its first one;
- limits: CPU seconds, address space and file size per process (setrlimit), processes in all
  (a pids cgroup where one can be made, else RLIMIT_NPROC as the unprivileged user), and wall
  time, after which the whole process group is killed;
- the unprivileged user `nobody` when the command and the checkout are readable by others;
- its output captured, at most `Limits.output_bytes` of it kept.

Linux only, and it needs CAP_SYS_ADMIN (root, as in a service container): without it,
`available()` says why and `Sandbox` refuses to start.
"""

from __future__ import annotations

import os
import resource
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aixaudit.errors import ExecutionError

NOBODY = 65534
PIDS_CGROUP = Path("/sys/fs/cgroup/pids")
# What a command sees of the host's environment; everything else is dropped.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TERM")
SCRATCH = Path("/var/tmp")


@dataclass(frozen=True)
class Limits:
    """What one sandboxed command may use."""

    wall_s: float = 300.0
    cpu_s: int = 300  # per process
    memory_bytes: int = 4 << 30  # address space per process
    processes: int = 256  # all processes of the run together
    file_bytes: int = 256 << 20  # largest file a process may write
    tmp_bytes: int = 512 << 20  # each tmpfs (/tmp, /dev/shm, home)
    output_bytes: int = 64_000  # output kept: the first half and the last half


@dataclass(frozen=True)
class Outcome:
    """How a sandboxed command ended."""

    returncode: int | None  # None: killed at the wall-time limit
    output: str  # stdout and stderr interleaved, truncated to Limits.output_bytes
    truncated: bool
    wall_s: float
    cpu_s: float  # user + system seconds of every process the run waited for
    user: str  # "nobody", or "root" when the command could not run as nobody

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def passed(self) -> bool:
        return self.returncode == 0


@cache
def available() -> str | None:
    """Why this machine cannot sandbox (None when it can): tried once, by mounting an overlay
    in a throwaway mount namespace without network."""
    if shutil.which("unshare") is None:
        return "the unshare command is missing (util-linux)"
    with tempfile.TemporaryDirectory(prefix="aixaudit-probe-") as scratch:
        layers = _Layers(Path(scratch))
        layers.make()
        lower = Path(scratch) / "lower"
        lower.mkdir()
        script = f"{_overlay_mount(layers, lower)} && touch {shlex.quote(str(layers.merged))}/w"
        probe = subprocess.run(
            ["unshare", "--mount", "--net", "--pid", "--fork", "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
        )
    if probe.returncode != 0:
        return f"cannot make namespaces or mount overlayfs: {probe.stderr.strip()[:300]}"
    return None


@dataclass(frozen=True)
class _Layers:
    """The directories of one overlay under a scratch directory on the host."""

    scratch: Path

    @property
    def upper(self) -> Path:
        return self.scratch / "upper"

    @property
    def work(self) -> Path:
        return self.scratch / "work"

    @property
    def merged(self) -> Path:
        return self.scratch / "merged"

    def make(self) -> None:
        for path in (self.upper, self.work, self.merged):
            path.mkdir(parents=True, exist_ok=True)


def _overlay_mount(layers: _Layers, lower: Path) -> str:
    options = f"lowerdir={lower},upperdir={layers.upper},workdir={layers.work}"
    return (
        f"mount -n -t overlay overlay -o {shlex.quote(options)} {shlex.quote(str(layers.merged))}"
    )


class Sandbox:
    """One copy of a checkout; `run` any number of commands in it (each sees what earlier ones
    wrote). The copy lives until the `open()` block ends."""

    def __init__(self, checkout: Path, layers: _Layers, expose: Sequence[Path]) -> None:
        self.checkout = checkout
        self._layers = layers
        self._expose = [Path(p).resolve() for p in expose]

    @property
    def root(self) -> Path:
        """Where the copy is, as the commands see it."""
        return self._layers.merged

    @property
    def upper(self) -> Path:
        """What the runs wrote or were given, as the host sees it (a file a test writes in the
        copy, such as a coverage data file, is read from here)."""
        return self._layers.upper

    @staticmethod
    @contextmanager
    def open(
        checkout: Path,
        *,
        changes: Mapping[str, str] | None = None,
        expose: Sequence[Path] = (),
        scratch_dir: Path | None = None,
    ) -> Iterator[Sandbox]:
        """A copy of `checkout` with `changes` (relative path -> new text) applied. `expose`
        lists host directories the commands need that may sit where the sandbox puts a fresh
        tmpfs (an interpreter under the home directory, a virtual environment under /tmp):
        they are mounted back there, read-only."""
        reason = available()
        if reason is not None:
            raise ExecutionError(f"No sandbox on this machine: {reason}.")
        checkout = checkout.resolve()
        # Not under /tmp, which the commands get a fresh tmpfs over; open to nobody's traversal.
        scratch = Path(tempfile.mkdtemp(prefix="aixaudit-sandbox-", dir=scratch_dir or SCRATCH))
        scratch.chmod(0o711)
        try:
            layers = _Layers(scratch)
            layers.make()
            for relative, text in (changes or {}).items():
                target = (layers.upper / relative).resolve()
                if not target.is_relative_to(layers.upper):
                    raise ExecutionError(f"A change outside the checkout: {relative!r}.")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            yield Sandbox(checkout, layers, expose)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def run(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        cwd: str = ".",
    ) -> Outcome:
        """Run `argv` in the copy (at `cwd`, relative to its root) under `limits`."""
        user = "nobody" if self._nobody_can_run(argv[0]) else "root"
        script = self._script(argv, limits=limits, env=env or {}, cwd=cwd, user=user)
        command = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
                   "--mount-proc", "--", "sh", "-ec", script]  # fmt: skip
        with _pids_cgroup(limits.processes) as join:
            started = time.monotonic()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
                preexec_fn=lambda: _limit_self(limits, join),
            )
            deadline = started + limits.wall_s
            output, truncated = _collect(process, limits, deadline)
            status, usage = _reap(process, deadline)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        return Outcome(
            returncode=code,
            output=output,
            truncated=truncated,
            wall_s=time.monotonic() - started,
            cpu_s=usage.ru_utime + usage.ru_stime,
            user=user,
        )

    def _nobody_can_run(self, program: str) -> bool:
        """Whether `nobody` can read the checkout and run the program. Paths under an exposed
        directory are judged as the sandbox shows them (mounted under a home open to all)."""
        found = Path(shutil.which(program) or program).absolute()
        checkout_open = self.checkout.stat().st_mode & 0o005 == 0o005
        return checkout_open and all(
            _others_can_reach(path, self._expose) for path in (found, found.resolve())
        )

    def _script(
        self, argv: Sequence[str], *, limits: Limits, env: Mapping[str, str], cwd: str, user: str
    ) -> str:
        """The shell commands run as root inside the new namespaces, ending in an exec. Order
        matters: the overlay is mounted while its upper layer is writable, every mount but the
        copy then turns read-only, and the fresh tmpfs mounts come last."""
        merged, home, q = self._layers.merged, Path.home(), shlex.quote
        tmpfs = f"mount -n -t tmpfs -o size={limits.tmp_bytes},mode=1777 tmpfs"
        covered = _covered()
        exposed = [p for p in self._expose if any(p.is_relative_to(c) for c in covered)]
        staged = [self._layers.scratch / f"expose{i}" for i in range(len(exposed))]
        lines = ["mount -n --make-rprivate /", _overlay_mount(self._layers, self.checkout)]
        for path, stage in zip(exposed, staged, strict=True):  # before they are covered
            lines += [
                f"mkdir -p {q(str(stage))}",
                f"mount -n --bind {q(str(path))} {q(str(stage))}",
            ]
        lines.append(
            "awk '{print $5}' /proc/self/mountinfo | while read -r m; do "
            f'[ "$m" = {q(str(merged))} ] || mount -n -o remount,bind,ro "$m" 2>/dev/null || true; '
            "done"
        )
        lines += [f"{tmpfs} {q(str(c))}" for c in covered]
        lines.append(f"chmod 0755 {q(str(home))}")
        for path, stage in zip(exposed, staged, strict=True):
            lines += [f"mkdir -p {q(str(path))}", f"mount -n --move {q(str(stage))} {q(str(path))}"]
        run_env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        run_env |= {"HOME": str(home), "TMPDIR": "/tmp"} | dict(env)
        assignments = " ".join(q(f"{key}={value}") for key, value in run_env.items())
        drop = ""
        if user == "nobody":
            # Directories of the copy become nobody's (copied up: metadata only), so that a
            # test may write beside its files; the files themselves stay read-only to it.
            lines.append(f"find {q(str(merged))} -type d -exec chown {NOBODY}:{NOBODY} {{}} +")
            lines.append(f"chown {NOBODY}:{NOBODY} {q(str(home))}")
            drop = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "
        lines.append(f"cd {q(str(merged / cwd))}")
        lines.append(f"exec {drop}env -i {assignments} {shlex.join(argv)}")
        return "\n".join(lines)


def _covered() -> list[Path]:
    """The directories each command gets a fresh tmpfs over."""
    return [Path.home(), Path("/tmp"), Path("/dev/shm")]


def _others_can_reach(path: Path, exposed: Sequence[Path]) -> bool:
    """Whether a user in no group of the owner can traverse to `path` and read it, as the
    sandbox shows it: above an exposed directory that lies in a covered one, the sandbox makes
    the directories afresh, open to all."""
    covered = _covered()
    for part in [path, *path.parents]:
        recreated = any(part in root.parents for root in exposed if root != part) and any(
            part.is_relative_to(c) for c in covered
        )
        if recreated:
            continue
        needed = 0o005 if part.is_dir() else 0o004
        if part.stat().st_mode & needed != needed:
            return False
    return True


@contextmanager
def _pids_cgroup(processes: int) -> Iterator[Path | None]:
    """A pids cgroup capped at `processes`, removed afterwards; None where none can be made
    (then RLIMIT_NPROC limits the unprivileged user, and root is not limited)."""
    group = PIDS_CGROUP / f"aixaudit-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(processes))
    except OSError:
        yield None
        return
    try:
        yield group
    finally:
        with suppress(OSError):
            group.rmdir()


def _limit_self(limits: Limits, cgroup: Path | None) -> None:
    """In the child, before exec: join the cgroup and set the per-process limits, which
    every process of the run inherits."""
    if cgroup is not None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    else:  # per user, all of the user's processes: only where no cgroup counts the run's
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _collect(process: subprocess.Popen[bytes], limits: Limits, deadline: float) -> tuple[str, bool]:
    """Read the output until every process of the run closed it or the deadline passed (then
    kill the group); keep the first and last halves of Limits.output_bytes."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    half = limits.output_bytes // 2
    head, tail, seen = bytearray(), bytearray(), 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=min(left, 1.0)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += len(chunk)
            room = max(half - len(head), 0)
            head += chunk[:room]
            tail = (tail + chunk[room:])[-half:]
    process.stdout.close()
    truncated = seen > len(head) + len(tail)
    text = head.decode(errors="replace")
    if truncated:
        text += f"\n[... {seen - len(head) - len(tail)} bytes of output left out ...]\n"
    return text + tail.decode(errors="replace"), truncated


def _reap(
    process: subprocess.Popen[bytes], deadline: float
) -> tuple[int | None, resource.struct_rusage]:
    """Wait for the run to end, killing its whole process group at the deadline; returns
    the wait status (None when killed at the deadline) and the resources it used."""
    while True:
        pid, raw, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(raw)  # reaped: Popen must not wait
            return raw, usage
        if time.monotonic() > deadline:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = -signal.SIGKILL
            return None, usage
        time.sleep(0.01)
