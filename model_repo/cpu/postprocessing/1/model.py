"""Triton `postprocessing` step: generated token ids -> text_output.

Decodes with the `tokenizers` library (no torch in this stub), skipping special tokens as
TensorRT-LLM's postprocessing does. Takes TensorRT-LLM's [beam, tokens] / [beam] per request, which
the CPU stand-in returns too, since the rendered GPU repository copies this file; one string per
beam. The tokenizer folder is the `tokenizer_dir` parameter, else $AIXAUDIT_CPU_MODEL_DIR.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

MODEL_DIR_ENV = "AIXAUDIT_CPU_MODEL_DIR"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        folder = parameters.get("tokenizer_dir", {}).get("string_value") or os.environ.get(
            MODEL_DIR_ENV, ""
        )
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise pb_utils.TritonModelException(
                f"No tokenizer.json in {folder!r}: "
                f"set the tokenizer_dir parameter or {MODEL_DIR_ENV}"
            )
        self.tokenizer = Tokenizer.from_file(str(path))

    def execute(self, requests: list[Any]) -> list[Any]:
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", self._texts(r))])
            for r in requests
        ]

    def _texts(self, request: Any) -> np.ndarray:
        tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
        lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
        texts = [
            [
                self.tokenizer.decode(beam[: int(length)].tolist(), skip_special_tokens=True)
                for beam, length in zip(row_tokens, row_lengths, strict=True)
            ]
            for row_tokens, row_lengths in zip(tokens, lengths, strict=True)
        ]
        return np.array([[text.encode("utf-8") for text in row] for row in texts], dtype=np.object_)
