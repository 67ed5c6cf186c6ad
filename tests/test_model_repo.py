from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import ModelConfig

from aixaudit import cli
from aixaudit.ensemble import ENSEMBLE_INPUTS, ENSEMBLE_OUTPUTS, TensorSpec
from aixaudit.errors import ConfigError
from aixaudit.model_repo import (
    BACKENDS_MANIFEST,
    CPU_REPO,
    NEWEST_BACKEND,
    PYTHON_MODELS,
    REQUIREMENTS_FILE,
    TRTLLM_MODELS,
    TRTLLM_TEMPLATES,
    backend_versions,
    check_ensemble_wiring,
    check_repository,
    check_server_paths,
    declare,
    fill_template,
    get_backend,
    python_requirements,
    read_config,
    render_fixed_cost,
    render_trtllm,
    tensor_specs,
)

TOKENIZER = "/models/aixcoder-7b"
ENGINE = "/engines/aixcoder-7b"


def assert_ensemble_interface(config: ModelConfig) -> None:
    """The ensemble config declares exactly aixaudit/ensemble.py's inputs and outputs."""
    assert tensor_specs(config.input) == {spec.name: spec for spec in ENSEMBLE_INPUTS}
    assert tensor_specs(config.output) == {spec.name: spec for spec in ENSEMBLE_OUTPUTS}


@pytest.fixture
def python_models(tmp_path: Path) -> Path:
    """Stand-ins for the CPU repository's pre/post-processing model files."""
    root = tmp_path / "cpu"
    for model in PYTHON_MODELS:
        version = root / model / "1"
        (version / "__pycache__").mkdir(parents=True)
        (version / "model.py").write_text(f"# {model} model\n")
        (version / "helper.py").write_text(f"# {model} helper\n")
        (version / REQUIREMENTS_FILE).write_text("tokenizers\n")
        (version / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    return root


@pytest.fixture
def repo(tmp_path: Path, python_models: Path) -> Path:
    return render_trtllm(
        tmp_path / "out" / "repo",
        tokenizer_dir=TOKENIZER,
        engine_dir=ENGINE,
        python_models_dir=python_models,
    )


def _params(model: str, repo: Path) -> dict[str, str]:
    config = read_config(repo / model / "config.pbtxt")
    return {key: value.string_value for key, value in config.parameters.items()}


@pytest.mark.parametrize(
    ("model", "backend", "platform"),
    [
        ("ensemble", "", "ensemble"),
        ("preprocessing", "python", ""),
        ("tensorrt_llm", "tensorrtllm", ""),
        ("postprocessing", "python", ""),
    ],
)
def test_every_model_parses_with_its_backend(
    repo: Path, model: str, backend: str, platform: str
) -> None:
    config = read_config(repo / model / "config.pbtxt")
    assert (config.name, config.backend, config.platform) == (model, backend, platform)
    assert config.max_batch_size == 64
    assert (repo / model / "1").is_dir()
    assert "${" not in (repo / model / "config.pbtxt").read_text()


def test_default_render_fills_every_parameter(repo: Path) -> None:
    assert _params("tensorrt_llm", repo) == {
        "gpt_model_type": "inflight_fused_batching",
        "gpt_model_path": ENGINE,
        "max_beam_width": "1",
        "exclude_input_in_output": "true",
        "batch_scheduler_policy": "guaranteed_no_evict",
        "kv_cache_free_gpu_mem_fraction": "0.9",
        "enable_kv_cache_reuse": "true",
        "tokenizer_dir": TOKENIZER,
        "guided_decoding_backend": "",
        "xgrammar_tokenizer_info_path": "",
    }
    trtllm = read_config(repo / "tensorrt_llm" / "config.pbtxt")
    assert trtllm.model_transaction_policy.decoupled is False
    assert trtllm.dynamic_batching.max_queue_delay_microseconds == 1000
    for model in PYTHON_MODELS:
        assert _params(model, repo)["tokenizer_dir"] == TOKENIZER
        assert [
            group.count for group in read_config(repo / model / "config.pbtxt").instance_group
        ] == [2]


def test_the_ensemble_declares_profile_model_and_tokenizer(
    tmp_path: Path, python_models: Path, repo: Path
) -> None:
    assert _params("ensemble", repo) == {
        "prompt_profile": "aixcoder",
        "model_id": "aiXcoder/aixcoder-7b-base",
        "tokenizer_dir": TOKENIZER,
        "tokenizer_sha256": "",  # the tokenizer is not on this machine: no hash to declare
    }
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    other = render_trtllm(
        tmp_path / "other",
        tokenizer_dir=tokenizer,
        engine_dir=ENGINE,
        python_models_dir=python_models,
        profile="l2r",
        model_id="org/model-1b",
    )
    assert _params("ensemble", other) == {
        "prompt_profile": "l2r",
        "model_id": "org/model-1b",
        "tokenizer_dir": str(tokenizer),
        "tokenizer_sha256": hashlib.sha256(b"{}").hexdigest(),
    }
    with pytest.raises(ConfigError, match="profile"):
        render_trtllm(tmp_path / "bad", tokenizer_dir=TOKENIZER, engine_dir=ENGINE, profile="fim")


def test_declare_sets_only_the_declared_keys(tmp_path: Path) -> None:
    repo = render_fixed_cost(tmp_path / "repo", delay_ms=1, declared={"prompt_profile": "l2r"})
    assert _params("ensemble", repo) == {"prompt_profile": "l2r"}
    declare(repo, {"prompt_profile": "", "model_id": "m"})
    assert _params("ensemble", repo) == {"model_id": "m"}
    with pytest.raises(ConfigError, match="declares only"):
        declare(repo, {"gpt_model_path": "/x"})


def test_options_reach_the_configs(tmp_path: Path, python_models: Path) -> None:
    repo = render_trtllm(
        tmp_path / "repo",
        tokenizer_dir=Path("/tok"),
        engine_dir="/eng",
        max_batch_size=16,
        decoupled=True,
        max_queue_delay_us=0,
        kv_cache_reuse=False,
        kv_cache_free_gpu_mem_fraction=0.5,
        batch_scheduler_policy="max_utilization",
        preprocessing_instances=3,
        postprocessing_instances=5,
        python_models_dir=python_models,
    )
    trtllm = read_config(repo / "tensorrt_llm" / "config.pbtxt")
    assert trtllm.model_transaction_policy.decoupled is True
    assert trtllm.dynamic_batching.max_queue_delay_microseconds == 0
    params = _params("tensorrt_llm", repo)
    assert params["gpt_model_path"] == "/eng"
    assert params["enable_kv_cache_reuse"] == "false"
    assert params["kv_cache_free_gpu_mem_fraction"] == "0.5"
    assert params["batch_scheduler_policy"] == "max_utilization"
    assert _params("preprocessing", repo) == {"tokenizer_dir": "/tok", "add_bos_token": "true"}
    counts = {
        model: read_config(repo / model / "config.pbtxt").instance_group[0].count
        for model in PYTHON_MODELS
    }
    assert counts == {"preprocessing": 3, "postprocessing": 5}
    assert {read_config(repo / m / "config.pbtxt").max_batch_size for m in TRTLLM_MODELS} == {16}


def test_python_models_are_copied_without_caches(repo: Path) -> None:
    for model in PYTHON_MODELS:
        version = repo / model / "1"
        assert sorted(p.name for p in version.iterdir()) == [
            "helper.py",
            "model.py",
            REQUIREMENTS_FILE,
        ]
        assert (version / "model.py").read_text() == f"# {model} model\n"
    assert list((repo / "tensorrt_llm" / "1").iterdir()) == []


def _cpu_config(model: str) -> ModelConfig:
    return read_config(CPU_REPO / model / "config.pbtxt")


@pytest.mark.parametrize("which", ["trtllm", "cpu"])
def test_ensemble_interface_equals_ensemble_py(repo: Path, which: str) -> None:
    """Both repositories expose the one interface in aixaudit/ensemble.py, so they cannot drift."""
    rendered = read_config(repo / "ensemble" / "config.pbtxt")
    assert_ensemble_interface(rendered if which == "trtllm" else _cpu_config("ensemble"))


def _names_types(specs: dict[str, TensorSpec]) -> dict[str, tuple[str, bool]]:
    return {name: (spec.data_type, spec.optional) for name, spec in specs.items()}


@pytest.mark.parametrize("model", PYTHON_MODELS)
def test_python_model_io_names_match_the_cpu_repository(repo: Path, model: str) -> None:
    """The copied model.py finds the tensors it reads and writes, by name and type."""
    rendered, cpu = read_config(repo / model / "config.pbtxt"), _cpu_config(model)
    assert _names_types(tensor_specs(rendered.input)) == _names_types(tensor_specs(cpu.input))
    assert _names_types(tensor_specs(rendered.output)) == _names_types(tensor_specs(cpu.output))


def test_preprocessing_shapes_match_the_cpu_repository(repo: Path) -> None:
    rendered, cpu = (
        read_config(repo / "preprocessing" / "config.pbtxt"),
        _cpu_config("preprocessing"),
    )
    assert tensor_specs(rendered.input) == tensor_specs(cpu.input)
    assert tensor_specs(rendered.output) == tensor_specs(cpu.output)


def test_postprocessing_shapes_match_the_cpu_repository(repo: Path) -> None:
    """TensorRT-LLM's [beam, tokens] / [beam] per request, which the CPU stand-in returns too."""
    rendered = read_config(repo / "postprocessing" / "config.pbtxt")
    assert tensor_specs(rendered.input) == tensor_specs(_cpu_config("postprocessing").input)
    rendered_outputs = tensor_specs(read_config(repo / "tensorrt_llm" / "config.pbtxt").output)
    for name, spec in tensor_specs(_cpu_config("tensorrt_llm").output).items():
        assert rendered_outputs[name] == spec


def test_cpu_repository_wiring_is_consistent() -> None:
    assert check_ensemble_wiring(CPU_REPO) == []


def test_renders_with_the_real_cpu_model_files(tmp_path: Path) -> None:
    repo = render_trtllm(tmp_path / "repo", tokenizer_dir=TOKENIZER, engine_dir=ENGINE)
    for model in PYTHON_MODELS:
        assert (repo / model / "1" / "model.py").read_bytes() == (
            CPU_REPO / model / "1" / "model.py"
        ).read_bytes()


def test_rendered_wiring_is_consistent(repo: Path) -> None:
    assert check_ensemble_wiring(repo) == []


def _edit_step(
    repo: Path,
    step: int,
    *,
    input_map: dict[str, str] | None = None,
    output_map: dict[str, str] | None = None,
) -> None:
    path = repo / "ensemble" / "config.pbtxt"
    config = read_config(path)
    target = config.ensemble_scheduling.step[step]
    for key, value in (input_map or {}).items():
        target.input_map[key] = value
    for key, value in (output_map or {}).items():
        target.output_map[key] = value
    path.write_text(text_format.MessageToString(config))


def test_renamed_tensor_is_reported(repo: Path) -> None:
    _edit_step(repo, 1, input_map={"input_ids": "_INPUT_IDZ"})
    assert check_ensemble_wiring(repo) == [
        "tensorrt_llm input 'input_ids' reads '_INPUT_IDZ', "
        "which no ensemble input or earlier step provides"
    ]


def test_unproduced_output_and_type_mismatch_are_reported(repo: Path) -> None:
    _edit_step(repo, 2, output_map={"OUTPUT": "_text"})
    _edit_step(repo, 1, input_map={"runtime_top_k": "top_p"})
    assert check_ensemble_wiring(repo) == [
        "tensorrt_llm input 'runtime_top_k' is TYPE_INT32 [1] but 'top_p' is TYPE_FP32 [1]",
        "ensemble output 'text_output' is produced by no step",
    ]


def test_unknown_names_and_unmapped_required_input_are_reported(repo: Path) -> None:
    path = repo / "ensemble" / "config.pbtxt"
    config = read_config(path)
    post = config.ensemble_scheduling.step[2]
    post.input_map["token_ids"] = post.input_map.pop("TOKENS_BATCH")
    post.output_map["text"] = post.output_map.pop("OUTPUT")
    path.write_text(text_format.MessageToString(config))
    assert check_ensemble_wiring(repo) == [
        "postprocessing declares no input 'token_ids'",
        "postprocessing input 'TOKENS_BATCH' is required but not mapped",
        "postprocessing declares no output 'text'",
        "ensemble output 'text_output' is produced by no step",
    ]


def test_shape_mismatch_is_reported(repo: Path) -> None:
    path = repo / "postprocessing" / "config.pbtxt"
    config = read_config(path)
    del config.input[0].dims[:]
    config.input[0].dims.append(-1)
    path.write_text(text_format.MessageToString(config))
    assert check_ensemble_wiring(repo) == [
        "postprocessing input 'TOKENS_BATCH' is TYPE_INT32 [-1] "
        "but '_TOKENS_BATCH' is TYPE_INT32 [-1, -1]"
    ]


def test_missing_step_model_is_reported(repo: Path) -> None:
    shutil.rmtree(repo / "postprocessing")
    assert check_ensemble_wiring(repo) == [
        "step model 'postprocessing' is not in the repository",
        "ensemble output 'text_output' is produced by no step",
    ]


def test_unfilled_placeholder_is_an_error(tmp_path: Path, python_models: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TRTLLM_TEMPLATES, templates)
    config = templates / "tensorrt_llm" / "config.pbtxt"
    config.write_text(
        config.read_text()
        + 'parameters { key: "x" value: { string_value: "${mystery}${other}" } }\n'
    )
    with pytest.raises(ConfigError, match="placeholders with no value: mystery, other"):
        render_trtllm(
            tmp_path / "repo",
            tokenizer_dir=TOKENIZER,
            engine_dir=ENGINE,
            templates_dir=templates,
            python_models_dir=python_models,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu", "templates"]


def test_malformed_placeholder_is_an_error() -> None:
    assert fill_template("a ${x} b", {"x": "${y}"}, source="t") == "a ${y} b"
    with pytest.raises(ConfigError, match="malformed placeholder"):
        fill_template("a ${x-y}", {}, source="t")


def test_non_empty_output_needs_force(tmp_path: Path, python_models: Path) -> None:
    out = tmp_path / "repo"
    out.mkdir()
    (out / "old.txt").write_text("old")
    options: dict[str, Any] = {
        "tokenizer_dir": TOKENIZER,
        "engine_dir": ENGINE,
        "python_models_dir": python_models,
    }
    with pytest.raises(ConfigError, match="not empty"):
        render_trtllm(out, **options)
    render_trtllm(out, force=True, **options)
    assert sorted(p.name for p in out.iterdir()) == sorted(TRTLLM_MODELS)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"tokenizer_dir": "models/tok"}, "absolute path"),
        ({"engine_dir": '/eng"ine'}, "quote"),
        ({"max_batch_size": 0}, "at least 1"),
        ({"postprocessing_instances": 0}, "at least 1"),
        ({"max_queue_delay_us": -1}, "0 or more"),
        ({"kv_cache_free_gpu_mem_fraction": 0.0}, r"\(0, 1\]"),
        ({"batch_scheduler_policy": "static_batch"}, "guaranteed_no_evict, max_utilization"),
    ],
)
def test_bad_options_are_rejected(
    tmp_path: Path, python_models: Path, option: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {"tokenizer_dir": TOKENIZER, "engine_dir": ENGINE, **option}
    with pytest.raises(ConfigError, match=message):
        render_trtllm(tmp_path / "repo", python_models_dir=python_models, **options)


def test_missing_python_model_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"preprocessing/1/model.py is missing"):
        render_trtllm(
            tmp_path / "repo",
            tokenizer_dir=TOKENIZER,
            engine_dir=ENGINE,
            python_models_dir=tmp_path,
        )


def test_invalid_config_text_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "x"\nmax_batch_sise: 4\n')
    with pytest.raises(ConfigError, match="not a valid model config"):
        read_config(path)


# Backend versions: the manifest (model_repo/trtllm/backends.json) holds what each version reads.

VERSIONS = list(backend_versions())


def test_manifest_names_its_sources_and_containers() -> None:
    """Each version cites the repository, tag and files its facts come from, and a container."""
    entries = json.loads(BACKENDS_MANIFEST.read_text())["versions"]
    assert list(entries) == VERSIONS and NEWEST_BACKEND == VERSIONS[-1] == "1.2"
    for entry in entries.values():
        source = entry["source"]
        assert source["repository"] and source["tag"] and source["files"]
        assert all(tag.endswith("-trtllm-python-py3") for tag in entry["containers"])
        assert entry["containers"]


@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_repository_matches_the_version_manifest(
    tmp_path: Path, python_models: Path, version: str
) -> None:
    """Every parameter the backend reads without a fallback is there, every tensorrt_llm tensor
    is one the version reads with its type and shape, and the seed reaches it by its name."""
    backend = get_backend(version)
    repo = render_trtllm(
        tmp_path / "repo",
        tokenizer_dir=TOKENIZER,
        engine_dir=ENGINE,
        backend_version=version,
        python_models_dir=python_models,
    )
    assert check_repository(repo, backend=backend) == []
    assert backend.required_parameters["tensorrt_llm"] <= _params("tensorrt_llm", repo).keys()
    trtllm = read_config(repo / "tensorrt_llm" / "config.pbtxt")
    for declared, known in (
        (tensor_specs(trtllm.input), backend.inputs["tensorrt_llm"]),
        (tensor_specs(trtllm.output), backend.outputs["tensorrt_llm"]),
    ):
        for name, spec in declared.items():
            assert (spec.data_type, spec.dims) == (known[name].data_type, known[name].dims)
    seed_step = read_config(repo / "ensemble" / "config.pbtxt").ensemble_scheduling.step[1]
    assert seed_step.input_map[backend.seed_input] == "seed"
    assert backend.seed_input in backend.inputs["tensorrt_llm"]


def test_seed_is_spelled_as_each_version_reads_it() -> None:
    assert {v: get_backend(v).seed_input for v in VERSIONS} == {
        "0.19": "random_seed",
        "1.2": "seed",
    }


@pytest.mark.parametrize(("rendered", "checked"), [("0.19", "1.2"), ("1.2", "0.19")])
def test_repository_for_one_version_fails_the_other(
    tmp_path: Path, python_models: Path, rendered: str, checked: str
) -> None:
    repo = render_trtllm(
        tmp_path / "repo",
        tokenizer_dir=TOKENIZER,
        engine_dir=ENGINE,
        backend_version=rendered,
        python_models_dir=python_models,
    )
    seed = get_backend(rendered).seed_input
    assert check_repository(repo, backend=get_backend(checked)) == [
        f"tensorrt_llm declares the input {seed!r}, which backend {checked} does not know"
    ]


def test_missing_parameter_and_wrong_tensor_type_are_reported(repo: Path) -> None:
    """The old template: no guided-decoding parameters; and a tensor typed unlike upstream."""
    path = repo / "tensorrt_llm" / "config.pbtxt"
    config = read_config(path)
    for name in ("tokenizer_dir", "guided_decoding_backend"):
        del config.parameters[name]
    path.write_text(text_format.MessageToString(config))
    post = repo / "postprocessing" / "config.pbtxt"
    post_config = read_config(post)
    post_config.output[0].data_type = 8  # TYPE_INT32
    post.write_text(text_format.MessageToString(post_config))
    where = "which backend 1.2 reads with no default"
    assert check_repository(repo, backend=get_backend(NEWEST_BACKEND)) == [
        "ensemble output 'text_output' is TYPE_STRING [-1] but its step gives TYPE_INT32 [-1]",
        f"tensorrt_llm lacks the parameter 'guided_decoding_backend', {where}",
        f"tensorrt_llm lacks the parameter 'tokenizer_dir', {where}",
        "postprocessing output 'OUTPUT' is TYPE_INT32 but backend 1.2 has TYPE_STRING",
    ]


def test_missing_requirements_and_required_input_are_reported(repo: Path) -> None:
    (repo / "preprocessing" / "1" / REQUIREMENTS_FILE).unlink()
    path = repo / "tensorrt_llm" / "config.pbtxt"
    config = read_config(path)
    kept = [t for t in config.input if t.name != "request_output_len"]
    del config.input[:]
    config.input.extend(kept)
    path.write_text(text_format.MessageToString(config))
    problems = check_repository(repo, backend=get_backend(NEWEST_BACKEND))
    assert (
        "tensorrt_llm does not declare the input 'request_output_len', which backend 1.2 requires"
        in problems
    )
    assert (
        f"preprocessing/1 has no {REQUIREMENTS_FILE} naming the modules its model.py imports"
        in problems
    )


def test_unknown_backend_version_is_an_error(tmp_path: Path) -> None:
    assert get_backend("v1.2.1").name == "1.2" and get_backend("0.19.0").name == "0.19"
    with pytest.raises(ConfigError, match=r"'0\.18' is not supported; choose one of: 0\.19, 1\.2"):
        render_trtllm(
            tmp_path / "repo", tokenizer_dir=TOKENIZER, engine_dir=ENGINE, backend_version="0.18"
        )
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("model", PYTHON_MODELS)
def test_python_models_declare_every_module_they_import(model: str) -> None:
    """requirements.txt names each non-standard module model.py imports (Triton's own aside)."""
    tree = ast.parse((CPU_REPO / model / "1" / "model.py").read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    }
    third_party = (
        imported - set(sys.stdlib_module_names) - {"__future__", "triton_python_backend_utils"}
    )
    assert (
        sorted(python_requirements(CPU_REPO)[model])
        == sorted(third_party)
        == ["numpy", "tokenizers"]
    )


def _server_files(tmp_path: Path) -> tuple[Path, Path]:
    tokenizer, engine = tmp_path / "tok", tmp_path / "engine"
    tokenizer.mkdir()
    engine.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    (engine / "config.json").write_text("{}")
    return tokenizer, engine


def test_server_paths_good_and_broken(tmp_path: Path, python_models: Path) -> None:
    tokenizer, engine = _server_files(tmp_path)
    repo = render_trtllm(
        tmp_path / "repo",
        tokenizer_dir=tokenizer,
        engine_dir=engine,
        python_models_dir=python_models,
    )
    assert check_server_paths(repo) == []
    (tokenizer / "tokenizer.json").unlink()
    (engine / "config.json").unlink()
    assert check_server_paths(repo) == [
        f"no tokenizer.json in {tokenizer} "
        "(preprocessing's tokenizer_dir, postprocessing's tokenizer_dir)",
        f"no config.json in {engine} (tensorrt_llm's gpt_model_path)",
    ]


def test_check_command_on_good_and_broken_repositories(tmp_path: Path) -> None:
    tokenizer, engine = _server_files(tmp_path)
    repo = tmp_path / "repo"
    render = [
        "model-repo",
        "render",
        "--tokenizer-dir",
        str(tokenizer),
        "--engine-dir",
        str(engine),
    ]
    rendered = CliRunner().invoke(cli.main, [*render, "--backend-version", "0.19", str(repo)])
    assert rendered.exit_code == 0, rendered.output
    assert "warning" not in rendered.output
    good = CliRunner().invoke(
        cli.main, ["model-repo", "check", "--backend-version", "0.19", str(repo)]
    )
    assert good.exit_code == 0 and "ready for TensorRT-LLM backend 0.19" in good.output
    (engine / "config.json").unlink()
    broken = CliRunner().invoke(cli.main, ["model-repo", "check", str(repo)])
    assert broken.exit_code == 1
    assert broken.output.strip().splitlines() == [
        f"error: {repo} would not serve on TensorRT-LLM backend 1.2: tensorrt_llm declares the "
        f"input 'random_seed', which backend 1.2 does not know; no config.json in {engine} "
        "(tensorrt_llm's gpt_model_path)."
    ]
