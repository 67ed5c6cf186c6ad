"""Launch the tritonserver binary that nvidia-pytriton bundles, on a CPU-only machine.

Pointed straight at a repository the binary fails in several quiet ways (no backend dir, stub not
found, the system's libpython, the system's python without numpy, a hang on a missing CUDA
library). `LocalTriton` sets up what it needs in a private temp dir, picks free loopback ports,
waits for readiness with a deadline and always leaves nothing running behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path

from aixaudit.config import Settings
from aixaudit.ensemble import (
    DECLARED_MODEL_ID,
    DECLARED_PROFILE,
    DECLARED_TOKENIZER_DIR,
    DECLARED_TOKENIZER_SHA256,
    DECLARED_WEIGHTS_SHA256,
)
from aixaudit.errors import ConfigError, ServerStartError
from aixaudit.model_repo import declared_copy
from aixaudit.processes import end_process_group
from aixaudit.resources import model_repo_dir
from aixaudit.tokens import tokenizer_sha256
from aixaudit.weights import ensure_cpu_model, source_sha256

MODEL_DIR_ENV = "AIXAUDIT_CPU_MODEL_DIR"
CPU_MODEL_PROFILE = "l2r"  # the CPU model has no fill-in-the-middle training
LOOPBACK = "127.0.0.1"
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"
LOG_TAIL_LINES = 20
ERROR_LINE_CHARS = 500
LOG_NOISE = ("CudaDriverHelper has not been initialized",)  # every CPU-only start logs it
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


class LocalTriton:
    """One tritonserver process serving a model repository on loopback ports.

    Use as `with LocalTriton().start(repo, env=...) as server: ...`; `stop()` is idempotent.
    `log_dir` keeps the server log; without it the log lives in the temp workspace that
    `stop()` removes (a start failure still quotes it in the ServerStartError).
    """

    def __init__(
        self,
        *,
        log_dir: Path | None = None,
        startup_timeout_s: float = 300.0,
        stub_timeout_s: int = 30,
        exit_timeout_s: int = 5,
        stop_timeout_s: float = 20.0,
    ) -> None:
        self.log_dir = log_dir
        self.startup_timeout_s = startup_timeout_s
        self.stub_timeout_s = stub_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workspace: Path | None = None
        self._ports: tuple[int, int, int] | None = None
        self._shm_prefix = ""

    # -- addresses -------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self._port(0)}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self._port(1)}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self._port(2)}/metrics"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def shm_prefix(self) -> str:
        """Name prefix of this server's Python-backend regions in /dev/shm (unique per server)."""
        return self._shm_prefix

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _port(self, index: int) -> int:
        if self._ports is None:
            raise ConfigError("The Triton server has not been started.")
        return self._ports[index]

    # -- lifecycle -------------------------------------------------------------------------
    def start(
        self,
        repo_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        declared: Mapping[str, str] | None = None,
    ) -> LocalTriton:
        """Start serving `repo_dir` and return once every model is ready (or raise). With
        `declared`, a copy of it whose ensemble declares those parameters is served."""
        if self._process is not None:
            raise ConfigError("This LocalTriton is already running; stop it first.")
        repo_dir = Path(repo_dir).resolve()
        if not repo_dir.is_dir():
            raise ConfigError(f"The model repository {repo_dir} does not exist.")
        binary, backends_source, stub, libs = _bundled_server()
        self._workspace = Path(tempfile.mkdtemp(prefix="aixaudit-triton-"))
        if declared:
            repo_dir = declared_copy(repo_dir, self._workspace / "repository", declared)
        backends = _backend_dir(self._workspace, backends_source, stub)
        self._ports = _free_ports()
        self._shm_prefix = f"{SHM_PREFIX}aixaudit_{os.getpid()}_{self._ports[0]}_"
        log_dir = self.log_dir or self._workspace
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = (
            log_dir / f"tritonserver-{time.strftime('%Y%m%d-%H%M%S')}-{self._ports[0]}.log"
        )
        command = [
            str(binary),
            f"--model-repository={repo_dir}",
            f"--backend-directory={backends}",
            f"--http-address={LOOPBACK}",
            f"--http-port={self._ports[0]}",
            f"--grpc-address={LOOPBACK}",
            f"--grpc-port={self._ports[1]}",
            f"--metrics-address={LOOPBACK}",
            f"--metrics-port={self._ports[2]}",
            "--exit-on-error=true",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--backend-config=python,stub-timeout-seconds={self.stub_timeout_s}",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_server_env(libs, env),
                start_new_session=True,  # its stubs share the group, so a hard kill reaches them
            )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL the whole process group; clean up what a kill leaks.

        Requests still in flight fail ("Server is stopping"): drain them before stopping.
        """
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None:
            end_process_group(process, grace_s=self.stop_timeout_s)  # its stubs are in the group
        if self._shm_prefix:
            for region in SHM_DIR.glob(f"{self._shm_prefix}*"):
                region.unlink(missing_ok=True)
        if self._workspace is not None:
            shutil.rmtree(self._workspace, ignore_errors=True)
            self._workspace = None

    def __enter__(self) -> LocalTriton:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        """Poll HTTP readiness with a fresh connection each time (a kept gRPC channel backs off)."""
        assert self._process is not None
        url = f"http://{self.http_url}/v2/health/ready"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"tritonserver exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with _DIRECT.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ServerStartError(
            f"tritonserver was not ready within {self.startup_timeout_s:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The log's error lines (a failed model load shows far from the end), then its end."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [
            line[:ERROR_LINE_CHARS]
            for line in text
            if line.startswith("E") and not any(noise in line for noise in LOG_NOISE)
        ]
        return "\n".join([*errors[:lines], "...", *text[-lines:]] if errors else text[-lines:])


def cpu_repository() -> Path:
    """The CPU model repository shipped with aixaudit (model_repo/cpu)."""
    repo = model_repo_dir() / "cpu"
    if not (repo / "ensemble" / "config.pbtxt").is_file():
        raise ConfigError(f"The CPU model repository is missing at {repo}; reinstall aixaudit.")
    return repo


def serve_cpu_model(settings: Settings, *, startup_timeout_s: float = 300.0) -> LocalTriton:
    """Convert the CPU model if needed and serve model_repo/cpu, declaring its profile, model
    and tokenizer (so a client given only the URL asks and counts as it should); the caller
    must stop() it."""
    model_dir = ensure_cpu_model(settings)
    server = LocalTriton(log_dir=settings.data_dir / "logs", startup_timeout_s=startup_timeout_s)
    return server.start(
        cpu_repository(), env={MODEL_DIR_ENV: str(model_dir)}, declared=cpu_declared(settings)
    )


def cpu_declared(settings: Settings) -> dict[str, str]:
    """What the served CPU model declares: its profile, name and tokenizer."""
    model_dir = ensure_cpu_model(settings)
    return {
        DECLARED_PROFILE: CPU_MODEL_PROFILE,
        DECLARED_MODEL_ID: settings.cpu_model,
        DECLARED_WEIGHTS_SHA256: source_sha256(model_dir) or "",
        DECLARED_TOKENIZER_DIR: str(model_dir),
        DECLARED_TOKENIZER_SHA256: tokenizer_sha256(model_dir) or "",
    }


def _bundled_server() -> tuple[Path, Path, Path, Path]:
    """(binary, python backend dir, stub for this Python, bundled libs dir) from nvidia-pytriton."""
    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(
            "nvidia-pytriton is not installed; run `pip install nvidia-pytriton`."
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = (
        root / "bin" / "tritonserver",
        root / "backends" / "python",
        root / "python_backend_stubs" / version / "triton_python_backend_stub",
        package.parent / "nvidia_pytriton.libs",
    )
    for path in paths:
        if not path.exists():
            raise ServerStartError(f"The nvidia-pytriton install lacks {path} (Python {version}).")
    return paths


def _backend_dir(workspace: Path, source: Path, stub: Path) -> Path:
    """backends/python with the bundled backend linked and the stub for this Python copied in."""
    python = workspace / "backends" / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (python / name).symlink_to(source / name)
    shutil.copy2(stub, python / stub.name)
    return python.parent


def _server_env(libs: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The stubs must run this interpreter (numpy<2, torch) with pyenv's libpython, not Debian's."""
    env = {**os.environ, **(extra or {})}
    lib_dirs = [sysconfig.get_config_var("LIBDIR") or "", str(libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(part for part in lib_dirs if part)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def _free_ports() -> tuple[int, int, int]:
    """Three ports the kernel hands out for port 0, held at once so they differ."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(3)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        first, second, third = (sock.getsockname()[1] for sock in sockets)
        return first, second, third
    finally:
        for sock in sockets:
            sock.close()
