"""Render the production TensorRT-LLM model repository and check any repository's ensemble wiring.

`render_fixed_cost` renders the CPU repository around a `tensorrt_llm` of known, fixed cost per
batch, which serving benchmarks and tests measure clients against.

The templates in `model_repo/trtllm` use the `${name}` placeholders users of the TensorRT-LLM
backend know from its fill_template.py. The Python-backend pre/post-processing models reuse the
CPU repository's model.py files, so both repositories tokenise and detokenise the same way.

Backend versions differ in what they read: `model_repo/trtllm/backends.json` records, per supported
version and taken from that release's source, the parameters the `tensorrt_llm` model reads with no
fallback and every template model's tensor names and types. Rendering fills the version's
spellings, and `check_repository` holds any repository against that manifest.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInput, ModelOutput

from aixaudit.ensemble import CLIENT_INPUTS, DECLARED_KEYS, ENSEMBLE_NAME, TensorSpec
from aixaudit.errors import ConfigError
from aixaudit.prompts import get_profile
from aixaudit.resources import model_repo_dir
from aixaudit.tokens import tokenizer_sha256

MODEL_REPO_DIR = model_repo_dir()
TRTLLM_TEMPLATES = MODEL_REPO_DIR / "trtllm"
CPU_REPO = MODEL_REPO_DIR / "cpu"
FIXED_COST_TEMPLATES = MODEL_REPO_DIR / "fixed_cost"
BACKENDS_MANIFEST = TRTLLM_TEMPLATES / "backends.json"
REQUIREMENTS_FILE = "requirements.txt"  # in a Python model's version dir: modules it imports

TRTLLM_MODELS = (ENSEMBLE_NAME, "preprocessing", "tensorrt_llm", "postprocessing")
PYTHON_MODELS = ("preprocessing", "postprocessing")  # their model.py comes from the CPU repository
SCHEDULER_POLICIES = ("guaranteed_no_evict", "max_utilization")
AIXCODER_MODEL_ID = "aiXcoder/aixcoder-7b-base"

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class BackendVersion:
    """What one TensorRT-LLM backend release reads, as `backends.json` records it."""

    name: str  # "0.19", "1.2": the release line
    release: str
    containers: tuple[str, ...]
    seed_input: str
    required_parameters: Mapping[str, frozenset[str]]  # model -> parameter names
    inputs: Mapping[str, Mapping[str, TensorSpec]]  # model -> name -> spec
    outputs: Mapping[str, Mapping[str, TensorSpec]]


@cache
def backend_versions() -> dict[str, BackendVersion]:
    """Every supported backend version, oldest first; the last is the newest (the default)."""
    data = json.loads(BACKENDS_MANIFEST.read_text(encoding="utf-8"))

    def specs(tensors: Mapping[str, list[Any]]) -> dict[str, TensorSpec]:
        return {
            name: TensorSpec(name, fields[0], tuple(fields[1]), len(fields) > 2 and fields[2])
            for name, fields in tensors.items()
        }

    return {
        name: BackendVersion(
            name=name,
            release=entry["release"],
            containers=tuple(entry["containers"]),
            seed_input=entry["seed_input"],
            required_parameters={
                model: frozenset(names) for model, names in entry["required_parameters"].items()
            },
            inputs={model: specs(t["inputs"]) for model, t in entry["tensors"].items()},
            outputs={model: specs(t["outputs"]) for model, t in entry["tensors"].items()},
        )
        for name, entry in data["versions"].items()
    }


NEWEST_BACKEND = list(backend_versions())[-1]


def get_backend(name: str) -> BackendVersion:
    """The named version ("1.2"; "v1.2.1" and "0.19.0" name their release lines too)."""
    versions = backend_versions()
    line = ".".join(name.removeprefix("v").split(".")[:2])
    if line not in versions:
        raise ConfigError(
            f"TensorRT-LLM backend version {name!r} is not supported; "
            f"choose one of: {', '.join(versions)}."
        )
    return versions[line]


def render_trtllm(
    out_dir: Path,
    *,
    tokenizer_dir: str | Path,
    engine_dir: str | Path,
    max_batch_size: int = 64,
    decoupled: bool = False,
    max_queue_delay_us: int = 1000,
    kv_cache_reuse: bool = True,
    kv_cache_free_gpu_mem_fraction: float = 0.9,
    batch_scheduler_policy: str = "guaranteed_no_evict",
    preprocessing_instances: int = 2,
    postprocessing_instances: int = 2,
    backend_version: str = NEWEST_BACKEND,
    profile: str = "aixcoder",
    model_id: str = AIXCODER_MODEL_ID,
    templates_dir: Path = TRTLLM_TEMPLATES,
    python_models_dir: Path = CPU_REPO,
    force: bool = False,
) -> Path:
    """Write a repository the named TensorRT-LLM backend version loads to `out_dir`; return it.

    Paths are written as given: they must be absolute paths as the server (often a container)
    sees them, so the render does not require them here (`check_server_paths` tells what is
    missing). The ensemble declares `profile`, `model_id` and the tokenizer (its sha256 when
    the tokenizer.json is readable here) to clients. The repository is built in a temporary
    sibling directory and held against the version's manifest (`check_repository`), then moved
    into place, so a failed render never leaves a half-written repository behind.
    """
    version = get_backend(backend_version)
    values = _template_values(
        tokenizer_dir=tokenizer_dir,
        engine_dir=engine_dir,
        max_batch_size=max_batch_size,
        decoupled=decoupled,
        max_queue_delay_us=max_queue_delay_us,
        kv_cache_reuse=kv_cache_reuse,
        kv_cache_free_gpu_mem_fraction=kv_cache_free_gpu_mem_fraction,
        batch_scheduler_policy=batch_scheduler_policy,
        preprocessing_instances=preprocessing_instances,
        postprocessing_instances=postprocessing_instances,
    ) | {
        "seed_input": version.seed_input,
        "prompt_profile": get_profile(profile).name,
        "model_id": _quotable("model id", model_id),
        "tokenizer_sha256": tokenizer_sha256(Path(tokenizer_dir)) or "",
    }

    def write(staging: Path) -> None:
        for model in TRTLLM_MODELS:
            code = python_models_dir / model / "1" if model in PYTHON_MODELS else None
            _render_model(model, staging, values, templates_dir, code)

    return _build_repository(
        Path(out_dir),
        write,
        check=lambda repo: check_repository(repo, backend=version),
        force=force,
    )


def render_fixed_cost(
    out_dir: Path,
    *,
    delay_ms: float,
    max_batch_size: int = 8,
    instances: int = 1,
    declared: Mapping[str, str] | None = None,
    force: bool = False,
) -> Path:
    """Write the CPU repository with a fixed-cost `tensorrt_llm` to `out_dir` and return it.

    Each batch of up to `max_batch_size` requests takes exactly `delay_ms` on each of `instances`
    instances, so the repository serves at most 1000 x max_batch_size / delay_ms x instances
    requests a second: the ceiling a serving benchmark is measured against. The ensemble and the
    pre/post-processing models are the CPU repository's with the same max batch size; serve it
    with `LocalTriton().start(repo, env={MODEL_DIR_ENV: <converted model dir>})` for the tokenizer.
    """
    for label, number in (("max batch size", max_batch_size), ("instance count", instances)):
        if number < 1:
            raise ConfigError(f"The {label} must be at least 1, not {number}.")
    if not delay_ms > 0:
        raise ConfigError(f"The fixed cost of a batch must be more than 0 ms, not {delay_ms}.")
    values = {
        "delay_ms": f"{delay_ms:g}",
        "max_batch_size": str(max_batch_size),
        "instance_count": str(instances),
    }

    def write(staging: Path) -> None:
        for model in (ENSEMBLE_NAME, *PYTHON_MODELS):
            _copy_model(CPU_REPO / model, staging / model, max_batch_size=max_batch_size)
        model = "tensorrt_llm"
        code = FIXED_COST_TEMPLATES / model / "1"
        _render_model(model, staging, values, FIXED_COST_TEMPLATES, code)
        declare(staging, declared or {})

    return _build_repository(Path(out_dir), write, check=check_ensemble_wiring, force=force)


def declared_copy(repo_dir: Path, out_dir: Path, declared: Mapping[str, str]) -> Path:
    """A copy of a repository whose ensemble declares `declared` (see `declare`)."""
    shutil.copytree(repo_dir, out_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    declare(out_dir, declared)
    return out_dir


def declare(repo_dir: Path, declared: Mapping[str, str]) -> None:
    """Set what the repository's ensemble declares to clients (aixaudit.ensemble.DECLARED_KEYS)
    as string parameters of its config; an empty value removes the parameter."""
    unknown = sorted(set(declared) - set(DECLARED_KEYS))
    if unknown:
        raise ConfigError(f"An ensemble declares only {', '.join(DECLARED_KEYS)}, not {unknown}.")
    path = Path(repo_dir) / ENSEMBLE_NAME / "config.pbtxt"
    config = read_config(path)
    for key, value in declared.items():
        if value:
            config.parameters[key].string_value = value
        elif key in config.parameters:
            del config.parameters[key]
    path.write_text(text_format.MessageToString(config), encoding="utf-8")


def _build_repository(
    out_dir: Path,
    write: Callable[[Path], None],
    *,
    check: Callable[[Path], list[str]],
    force: bool,
) -> Path:
    """Let `write` fill a temporary sibling directory, `check` it, then move it into place, so a
    failed render never leaves a half-written repository behind."""
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ConfigError(f"{out_dir} is not empty; render with force (--force) to replace it.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write(staging)
        problems = check(staging)
        if problems:
            raise ConfigError(f"The rendered repository would not load: {'; '.join(problems)}.")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir


def fill_template(text: str, values: Mapping[str, str], *, source: str) -> str:
    """Replace every `${name}`; any name without a value, or a malformed `${`, is an error."""
    missing = sorted(set(_PLACEHOLDER.findall(text)) - values.keys())
    if missing:
        raise ConfigError(f"{source} has placeholders with no value: {', '.join(missing)}.")
    if "${" in _PLACEHOLDER.sub("", text):
        raise ConfigError(f"{source} has a malformed placeholder (use ${{name}}).")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def read_config(path: Path) -> ModelConfig:
    """Parse a config.pbtxt with Triton's own protobuf schema (unknown fields are errors)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the model config {path}: {exc.strerror}.") from exc
    try:
        return text_format.Parse(text, ModelConfig())
    except text_format.ParseError as exc:
        raise ConfigError(f"{path} is not a valid model config: {exc}.") from exc


def tensor_specs(tensors: Iterable[ModelInput | ModelOutput]) -> dict[str, TensorSpec]:
    """A config's inputs or outputs by name, comparable with aixaudit/ensemble.py's specs."""
    return {
        t.name: TensorSpec(
            t.name, DataType.Name(t.data_type), tuple(t.dims), getattr(t, "optional", False)
        )
        for t in tensors
    }


def check_ensemble_wiring(repo_dir: Path, *, ensemble: str = ENSEMBLE_NAME) -> list[str]:
    """Problems in the ensemble's data flow; an empty list means every tensor has a source.

    Steps are checked in order: each mapped input must be an ensemble input or an earlier
    step's output with a data type and shape Triton accepts; each step model must exist and
    declare the mapped names, with every required input fed; each ensemble output must be
    produced by a step.
    """
    repo_dir = Path(repo_dir)
    config = read_config(repo_dir / ensemble / "config.pbtxt")
    available = {t.name: _Tensor.of(t, config) for t in config.input}
    produced: set[str] = set()
    problems: list[str] = []
    if not config.ensemble_scheduling.step:
        problems.append(f"{ensemble} has no ensemble_scheduling steps")
    for step in config.ensemble_scheduling.step:
        model = step.model_name
        if not (repo_dir / model / "config.pbtxt").is_file():
            problems.append(f"step model {model!r} is not in the repository")
            continue
        step_config = read_config(repo_dir / model / "config.pbtxt")
        inputs = {t.name: t for t in step_config.input}
        outputs = {t.name: t for t in step_config.output}
        for name, tensor in sorted(step.input_map.items()):
            if name not in inputs:
                problems.append(f"{model} declares no input {name!r}")
            elif tensor not in available:
                problems.append(
                    f"{model} input {name!r} reads {tensor!r}, "
                    "which no ensemble input or earlier step provides"
                )
            elif not (wanted := _Tensor.of(inputs[name], step_config)).fits(available[tensor]):
                problems.append(
                    f"{model} input {name!r} is {wanted} but {tensor!r} is {available[tensor]}"
                )
        for name, spec in inputs.items():
            if not spec.optional and name not in step.input_map:
                problems.append(f"{model} input {name!r} is required but not mapped")
        for name, tensor in sorted(step.output_map.items()):
            if name not in outputs:
                problems.append(f"{model} declares no output {name!r}")
            elif tensor in available:
                problems.append(f"{tensor!r} has more than one source ({model} output {name!r})")
            else:
                available[tensor] = _Tensor.of(outputs[name], step_config)
                produced.add(tensor)
    for output in config.output:
        if output.name not in produced:
            problems.append(f"ensemble output {output.name!r} is produced by no step")
        elif not (declared := _Tensor.of(output, config)).fits(available[output.name]):
            problems.append(
                f"ensemble output {output.name!r} is {declared} but its step gives "
                f"{available[output.name]}"
            )
    return problems


def check_repository(repo_dir: Path, *, backend: BackendVersion) -> list[str]:
    """Why `repo_dir` would not load on `backend`, beyond the ensemble's wiring; [] if nothing.

    `tensorrt_llm` must carry every parameter the backend reads with no fallback, and declare
    only tensors that version reads, with its names, types and shapes (its C++ reads them). The
    Python models' and the ensemble client's tensors must be named and typed as upstream's, and
    each Python model must say what it imports (requirements.txt).
    """
    repo_dir = Path(repo_dir)
    problems = check_ensemble_wiring(repo_dir)
    configs = {
        model: read_config(repo_dir / model / "config.pbtxt")
        for model in TRTLLM_MODELS
        if (repo_dir / model / "config.pbtxt").is_file()
    }
    where = f"backend {backend.name}"
    for model, names in sorted(backend.required_parameters.items()):
        if model in configs:
            problems.extend(
                f"{model} lacks the parameter {name!r}, which {where} reads with no default"
                for name in sorted(names - _parameters(configs[model]).keys())
            )
    for model, config in configs.items():
        strict = model == "tensorrt_llm"
        for kind, declared, known in (
            ("input", config.input, backend.inputs[model]),
            ("output", config.output, backend.outputs[model]),
        ):
            specs = tensor_specs(declared)
            if model == ENSEMBLE_NAME:  # its own interface; only what clients send must match
                specs = {n: s for n, s in specs.items() if kind == "output" or n in CLIENT_INPUTS}
            problems.extend(_tensor_problems(model, kind, specs, known, where, shapes=strict))
        if strict:
            declared_inputs = tensor_specs(config.input)
            problems.extend(
                f"{model} does not declare the input {name!r}, which {where} requires"
                for name, spec in backend.inputs[model].items()
                if not spec.optional and name not in declared_inputs
            )
    requirements = python_requirements(repo_dir)
    problems.extend(
        f"{model}/1 has no {REQUIREMENTS_FILE} naming the modules its model.py imports"
        for model in PYTHON_MODELS
        if model in configs and not requirements.get(model)
    )
    return problems


def check_server_paths(repo_dir: Path) -> list[str]:
    """Files the configs point at that are not on this machine: tokenizer.json in each
    `tokenizer_dir` of the Python models, the engine's config.json in `gpt_model_path`.
    Meaningful where the server runs (or where its paths are mounted alike)."""
    repo_dir = Path(repo_dir)
    wanted: dict[tuple[str, str], list[str]] = {}
    for model, key, name in (
        *((model, "tokenizer_dir", "tokenizer.json") for model in PYTHON_MODELS),
        ("tensorrt_llm", "gpt_model_path", "config.json"),
    ):
        config_path = repo_dir / model / "config.pbtxt"
        if config_path.is_file():
            folder = _parameters(read_config(config_path)).get(key, "")
            wanted.setdefault((folder, name), []).append(f"{model}'s {key}")
    return [
        f"no {name} in {folder or 'an empty path'} ({', '.join(users)})"
        for (folder, name), users in wanted.items()
        if not (folder and (Path(folder) / name).is_file())
    ]


def python_requirements(repo_dir: Path) -> dict[str, list[str]]:
    """The modules each Python model declares in its requirements.txt (comments dropped)."""
    found: dict[str, list[str]] = {}
    for model in PYTHON_MODELS:
        path = Path(repo_dir) / model / "1" / REQUIREMENTS_FILE
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            names = (line.split("#")[0].strip() for line in lines)
            found[model] = [name for name in names if name]
    return found


def _parameters(config: ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def _tensor_problems(
    model: str,
    kind: str,
    declared: Mapping[str, TensorSpec],
    known: Mapping[str, TensorSpec],
    where: str,
    *,
    shapes: bool,
) -> list[str]:
    """Declared tensors the version does not know, or knows with another type (or shape)."""
    problems = []
    for name, spec in declared.items():
        upstream = known.get(name)
        if upstream is None:
            problems.append(f"{model} declares the {kind} {name!r}, which {where} does not know")
        elif upstream.data_type.startswith("$"):
            continue  # a type upstream's template leaves to the user
        elif upstream.data_type != spec.data_type or (
            shapes and not _dims_match(upstream.dims, spec.dims)
        ):
            got = f"{spec.data_type} {list(spec.dims)}" if shapes else spec.data_type
            wants = f"{upstream.data_type} {list(upstream.dims)}" if shapes else upstream.data_type
            problems.append(f"{model} {kind} {name!r} is {got} but {where} has {wants}")
    return problems


@dataclass(frozen=True)
class _Tensor:
    """A tensor as Triton's ensemble check sees it: data type and dims, with or without batch."""

    data_type: int
    dims: tuple[int, ...]
    batching: bool

    @classmethod
    def of(cls, tensor: ModelInput | ModelOutput, config: ModelConfig) -> _Tensor:
        return cls(tensor.data_type, tuple(tensor.dims), config.max_batch_size > 0)

    def fits(self, other: _Tensor) -> bool:
        """Same type, and dims equal up to -1 wildcards (also once batch dims are added)."""
        return self.data_type == other.data_type and (
            _dims_match(self.dims, other.dims) or _dims_match(self._full_dims(), other._full_dims())
        )

    def _full_dims(self) -> tuple[int, ...]:
        return (-1, *self.dims) if self.batching else self.dims

    def __str__(self) -> str:
        return f"{DataType.Name(self.data_type)} {list(self.dims)}"


def _dims_match(left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    return len(left) == len(right) and all(
        a == b or -1 in (a, b) for a, b in zip(left, right, strict=True)
    )


def _render_model(
    model: str,
    staging: Path,
    values: Mapping[str, str],
    templates_dir: Path,
    code: Path | None,
) -> None:
    """Fill the model's config template; its version directory is a copy of `code` (a Python
    model's `1/`), or empty for a backend that needs no file there."""
    template = templates_dir / model / "config.pbtxt"
    if not template.is_file():
        raise ConfigError(f"The template {template} is missing; render from a source checkout.")
    model_dir = staging / model
    model_dir.mkdir()
    config = model_dir / "config.pbtxt"
    config.write_text(
        fill_template(template.read_text(encoding="utf-8"), values, source=str(template)),
        encoding="utf-8",
    )
    read_config(config)
    _copy_version(model, code, model_dir / "1")


def _copy_model(source: Path, model_dir: Path, *, max_batch_size: int) -> None:
    """Copy a model of a repository, its config rewritten with another max batch size."""
    config = read_config(source / "config.pbtxt")
    config.max_batch_size = max_batch_size
    model_dir.mkdir()
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config), encoding="utf-8")
    code = source / "1" if (source / "1" / "model.py").is_file() else None
    _copy_version(config.name, code, model_dir / "1")


def _copy_version(model: str, code: Path | None, version_dir: Path) -> None:
    if code is None:
        version_dir.mkdir()  # Triton needs a version directory even when it holds no file
        return
    if not (code / "model.py").is_file():
        raise ConfigError(f"{code / 'model.py'} is missing; the {model} model comes from there.")
    shutil.copytree(code, version_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _template_values(
    *,
    tokenizer_dir: str | Path,
    engine_dir: str | Path,
    max_batch_size: int,
    decoupled: bool,
    max_queue_delay_us: int,
    kv_cache_reuse: bool,
    kv_cache_free_gpu_mem_fraction: float,
    batch_scheduler_policy: str,
    preprocessing_instances: int,
    postprocessing_instances: int,
) -> dict[str, str]:
    """Validate the options and spell them as the templates need them."""
    for label, number in (
        ("max batch size", max_batch_size),
        ("preprocessing instance count", preprocessing_instances),
        ("postprocessing instance count", postprocessing_instances),
    ):
        if number < 1:
            raise ConfigError(f"The {label} must be at least 1, not {number}.")
    if max_queue_delay_us < 0:
        raise ConfigError(
            f"The queue delay must be 0 or more microseconds, not {max_queue_delay_us}."
        )
    if not 0.0 < kv_cache_free_gpu_mem_fraction <= 1.0:
        raise ConfigError(
            "The KV-cache GPU memory fraction must be in (0, 1], "
            f"not {kv_cache_free_gpu_mem_fraction}."
        )
    if batch_scheduler_policy not in SCHEDULER_POLICIES:
        raise ConfigError(
            f"The batch scheduler policy must be one of {', '.join(SCHEDULER_POLICIES)}, "
            f"not {batch_scheduler_policy!r}."
        )
    return {
        "tokenizer_dir": _server_path("tokenizer", tokenizer_dir),
        "engine_dir": _server_path("engine", engine_dir),
        "triton_max_batch_size": str(max_batch_size),
        "decoupled_mode": _flag(decoupled),
        "max_queue_delay_microseconds": str(max_queue_delay_us),
        "enable_kv_cache_reuse": _flag(kv_cache_reuse),
        "kv_cache_free_gpu_mem_fraction": str(kv_cache_free_gpu_mem_fraction),
        "batch_scheduler_policy": batch_scheduler_policy,
        "preprocessing_instance_count": str(preprocessing_instances),
        "postprocessing_instance_count": str(postprocessing_instances),
    }


def _server_path(label: str, path: str | Path) -> str:
    """An absolute POSIX path that can sit inside a quoted pbtxt string as is."""
    text = str(path)
    if not PurePosixPath(text).is_absolute():
        raise ConfigError(
            f"The {label} directory must be an absolute path on the server: {text!r}."
        )
    return _quotable(f"{label} directory", text)


def _quotable(label: str, text: str) -> str:
    """Text that can sit inside a quoted pbtxt string as is."""
    if any(char in text for char in '"\\\n'):
        raise ConfigError(f"The {label} contains a quote, backslash or newline: {text!r}.")
    return text


def _flag(value: bool) -> str:
    return "true" if value else "false"
