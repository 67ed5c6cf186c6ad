"""Fixed-cost `tensorrt_llm` stand-in: every batch takes exactly `delay_ms`, whatever its size.

A serving benchmark needs a ceiling known by construction: with batches of at most B requests,
D ms each and I instances, no client can get more than B / D x I completions per second. So
`execute` sleeps until a deadline measured from the moment the batch arrived (the work it does
itself is far below D), and answers each prompt with its last `request_output_len` token ids:
deterministic, different per prompt, cheap, and real code text for post-processing and scoring.
The tensors are model_repo/cpu/tensorrt_llm's (TensorRT-LLM's names and shapes: [beam, tokens] and
[beam] per request, one beam), so the ensemble is unchanged.

For tests of retries: with $AIXAUDIT_FIXED_COST_FAIL_FIRST=N, the first N requests for each prompt
(counted per instance) fail with UNAVAILABLE, the status of a restarting or overloaded server.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

FAIL_FIRST_ENV = "AIXAUDIT_FIXED_COST_FAIL_FIRST"


def scalars(request: Any, name: str, rows: int) -> list[int]:
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(rows).tolist()


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.delay_s = float(parameters["delay_ms"]["string_value"]) / 1000
        self.fail_first = int(os.environ.get(FAIL_FIRST_ENV) or 0)
        self.seen: Counter[bytes] = Counter()  # requests per prompt, while failing on purpose

    def execute(self, requests: list[Any]) -> list[Any]:
        deadline = time.monotonic() + self.delay_s
        responses = [self._response(request) for request in requests]
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        return responses

    def _response(self, request: Any) -> Any:
        if self.fail_first:
            prompt = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().tobytes()
            self.seen[prompt] += 1
            if self.seen[prompt] <= self.fail_first:
                error = pb_utils.TritonError(
                    f"failing on purpose ({FAIL_FIRST_ENV})", pb_utils.TritonError.UNAVAILABLE
                )
                return pb_utils.InferenceResponse(error=error)
        try:
            return pb_utils.InferenceResponse(output_tensors=self._outputs(request))
        except ValueError as exc:
            error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            return pb_utils.InferenceResponse(error=error)

    def _outputs(self, request: Any) -> list[Any]:
        ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
        rows = ids.shape[0]
        lengths = scalars(request, "input_lengths", rows)
        limits = scalars(request, "request_output_len", rows)
        end_tensor = pb_utils.get_input_tensor_by_name(request, "end_id")
        end_id = 0 if end_tensor is None else int(end_tensor.as_numpy().reshape(-1)[0])
        answers = []
        for row, (length, limit) in enumerate(zip(lengths, limits, strict=True)):
            if not 1 <= length <= ids.shape[1]:
                raise ValueError(f"input_lengths {length} does not fit input_ids of {ids.shape[1]}")
            if limit < 1:
                raise ValueError(f"request_output_len must be at least 1, got {limit}")
            answers.append(ids[row, max(0, length - limit) : length])
        width = max(len(answer) for answer in answers)
        output_ids = np.full((rows, 1, width), end_id, dtype=np.int32)
        for row, answer in enumerate(answers):
            output_ids[row, 0, : len(answer)] = answer
        sequence_length = np.array([[len(answer)] for answer in answers], dtype=np.int32)
        return [
            pb_utils.Tensor("output_ids", output_ids),
            pb_utils.Tensor("sequence_length", sequence_length),
        ]
