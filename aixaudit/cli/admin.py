"""Commands around the audits: the CPU model server, the API, the database, model repositories."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy import make_url

from aixaudit.config import get_settings
from aixaudit.errors import AixauditError, ConfigError
from aixaudit.model_repo import (
    AIXCODER_MODEL_ID,
    NEWEST_BACKEND,
    SCHEDULER_POLICIES,
    backend_versions,
    check_repository,
    check_server_paths,
    get_backend,
    render_trtllm,
)
from aixaudit.prompts import PROFILES
from aixaudit.store import db

from .shared import console


@click.command("serve")
def serve_command() -> None:
    """Serve the CPU model with the bundled tritonserver on loopback until SIGINT or SIGTERM
    (then the server and its stubs stop, and the command exits 128 + the signal's number)."""
    from aixaudit.local_triton import serve_cpu_model

    server = serve_cpu_model(get_settings())
    try:
        console.print(f"serving: grpc://{server.grpc_url}  http://{server.http_url}")
        console.print(f"use it:  export AIXAUDIT_TRITON_URL=grpc://{server.grpc_url}")
        while server.running:
            time.sleep(1)
        raise AixauditError(f"tritonserver exited; its log is {server.log_path}")
    finally:
        server.stop()


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port."
)
def api_command(host: str, port: int) -> None:
    """Serve the HTTP API (/api, described at /openapi.json) and the dashboard (/) until Ctrl-C.

    Migrates the database first, like `db upgrade` (the other commands refuse an old one).
    Without AIXAUDIT_API_TOKENS it listens on loopback only: reads are open there and writes
    are refused.
    """
    import uvicorn

    settings = get_settings()
    if not settings.api_tokens and not _is_loopback(host):
        raise ConfigError(
            f"Refusing to serve the API on {host} without a token: set AIXAUDIT_API_TOKENS "
            "(e.g. write:TOKEN) or listen on 127.0.0.1."
        )
    db.upgrade(settings.db_url)
    uvicorn.run("api.main:app", host=host, port=port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


@click.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
def db_upgrade_command() -> None:
    """Migrate the database to the current schema (creates it if needed)."""
    settings = get_settings()
    db.upgrade(settings.db_url)
    shown = make_url(settings.db_url).render_as_string(hide_password=True)
    console.print(f"database at the current schema: {shown}")


@click.group("model-repo")
def model_repo_group() -> None:
    """Triton model repositories."""


def _backend_version_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--backend-version",
        default=NEWEST_BACKEND,
        show_default=True,
        help=(
            "TensorRT-LLM backend release line the server runs "
            f"({', '.join(backend_versions())}; see model_repo/README.md for container tags)."
        ),
    )(command)


@model_repo_group.command("render")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_backend_version_option
@click.option(
    "--tokenizer-dir",
    required=True,
    help="Tokenizer folder (with tokenizer.json), as an absolute path on the server.",
)
@click.option(
    "--engine-dir",
    required=True,
    help="TensorRT-LLM engine folder built by trtllm-build, as an absolute path on the server.",
)
@click.option(
    "--max-batch-size",
    default=64,
    show_default=True,
    help="max_batch_size of all four models; keep it equal to the engine's --max_batch_size.",
)
@click.option(
    "--decoupled/--no-decoupled",
    default=False,
    show_default=True,
    help="Streaming mode; aixaudit sends plain requests, so leave it off.",
)
@click.option(
    "--max-queue-delay-us",
    default=1000,
    show_default=True,
    help="Microseconds a request may wait so that requests arriving together share a batch.",
)
@click.option(
    "--kv-cache-reuse/--no-kv-cache-reuse",
    default=True,
    show_default=True,
    help="Reuse KV-cache blocks of shared prompt prefixes (engine built with paged context FMHA).",
)
@click.option(
    "--kv-cache-fraction",
    default=0.9,
    show_default=True,
    help="Share of free GPU memory, after the weights, given to the KV cache.",
)
@click.option(
    "--scheduler-policy",
    type=click.Choice(SCHEDULER_POLICIES),
    default=SCHEDULER_POLICIES[0],
    show_default=True,
    help="TensorRT-LLM batch scheduler policy.",
)
@click.option(
    "--preprocessing-instances", default=2, show_default=True, help="Tokeniser processes."
)
@click.option(
    "--postprocessing-instances", default=2, show_default=True, help="Detokeniser processes."
)
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="aixcoder",
    show_default=True,
    help="Prompt format the model was trained for; the ensemble declares it to clients.",
)
@click.option(
    "--model-id",
    default=AIXCODER_MODEL_ID,
    show_default=True,
    help="The model's name, declared to clients and recorded with every run.",
)
@click.option("--force", is_flag=True, help="Replace OUT if it is not empty.")
def model_repo_render_command(
    out: Path,
    backend_version: str,
    tokenizer_dir: str,
    engine_dir: str,
    max_batch_size: int,
    decoupled: bool,
    max_queue_delay_us: int,
    kv_cache_reuse: bool,
    kv_cache_fraction: float,
    scheduler_policy: str,
    preprocessing_instances: int,
    postprocessing_instances: int,
    profile: str,
    model_id: str,
    force: bool,
) -> None:
    """Render the TensorRT-LLM (aiXcoder-7B) repository into OUT for the named backend version.

    The render fails, writing nothing, if the result would not load on that version; paths the
    configs point at are checked too, but only warned about: they are the server's paths.
    """
    rendered = render_trtllm(
        out,
        backend_version=backend_version,
        tokenizer_dir=tokenizer_dir,
        engine_dir=engine_dir,
        max_batch_size=max_batch_size,
        decoupled=decoupled,
        max_queue_delay_us=max_queue_delay_us,
        kv_cache_reuse=kv_cache_reuse,
        kv_cache_free_gpu_mem_fraction=kv_cache_fraction,
        batch_scheduler_policy=scheduler_policy,
        preprocessing_instances=preprocessing_instances,
        postprocessing_instances=postprocessing_instances,
        profile=profile,
        model_id=model_id,
        force=force,
    )
    version = get_backend(backend_version)
    console.print(
        f"rendered {rendered} for TensorRT-LLM backend {version.name} ({version.release})"
    )
    for problem in check_server_paths(rendered):
        console.print(f"warning: {problem} on this machine; fine if the server sees it there")
    console.print(f"serve it with: tritonserver --model-repository={rendered}")


@model_repo_group.command("check")
@click.argument("repo", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_backend_version_option
def model_repo_check_command(repo: Path, backend_version: str) -> None:
    """Say what would stop REPO from loading on the named backend version, run where it is served.

    Checks the ensemble wiring, the parameters and tensor names the backend version reads, the
    Python models' requirements.txt, a tokenizer.json in the tokenizer dir and the engine's
    config.json in the engine dir.
    """
    version = get_backend(backend_version)
    problems = check_repository(repo, backend=version) + check_server_paths(repo)
    if problems:
        raise ConfigError(
            f"{repo} would not serve on TensorRT-LLM backend {version.name}: {'; '.join(problems)}."
        )
    console.print(f"{repo}: ready for TensorRT-LLM backend {version.name} ({version.release})")
