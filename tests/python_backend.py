"""Run model_repo/cpu's Python-backend models outside Triton, for fast tests.

A stand-in `triton_python_backend_utils` carries tensors as plain numpy arrays and a request as a
dict of them, so a test calls a model's `initialize` / `execute` directly and reads its outputs.
The real server runs the same files in tests/test_local_triton.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from typing import Any

import numpy as np
import pytest

from aixaudit.local_triton import cpu_repository


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor] | None = None, error: Any = None) -> None:
        self.outputs = {t.name(): t.as_numpy() for t in output_tensors or []}
        self.error = error


class FakeModelException(Exception):
    pass


def _fake_pb_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = FakeTensor  # type: ignore[attr-defined]
    module.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    module.TritonError = str  # type: ignore[attr-defined]
    module.TritonModelException = FakeModelException  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = (  # type: ignore[attr-defined]
        lambda request, name: FakeTensor(name, request[name]) if name in request else None
    )
    return module


def load_model(model: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module of model_repo/cpu/<model>/1/model.py, importing the stand-in backend utils."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    path = cpu_repository() / model / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"cpu_{model}_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def start_model(model: str, monkeypatch: pytest.MonkeyPatch, **parameters: str) -> Any:
    """An initialised TritonPythonModel, its config holding the given string parameters."""
    instance = load_model(model, monkeypatch).TritonPythonModel()
    config = {"parameters": {k: {"string_value": v} for k, v in parameters.items()}}
    instance.initialize({"model_config": json.dumps(config)})
    return instance


def words(rows: list[list[str]]) -> np.ndarray:
    """A STRING [-1] input (stop or bad words), one row per request row."""
    return np.array([[w.encode() for w in row] for row in rows], dtype=np.object_)


def preprocess(instance: Any, texts: list[str], **inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The preprocessing model's outputs for one request of `texts` (8 new tokens each)."""
    request = {
        "QUERY": np.array([[t.encode()] for t in texts], dtype=np.object_),
        "REQUEST_OUTPUT_LEN": np.full((len(texts), 1), 8, dtype=np.int32),
        **inputs,
    }
    (response,) = instance.execute([request])
    assert response.error is None, response.error
    return response.outputs
