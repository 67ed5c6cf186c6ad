"""Bad model output on purpose, for tests: the prompt says how to misbehave.

A prompt that contains `misbehave: <way>` (a comment in the audited file) is answered the way
named; any other prompt gets a plain, good answer. The ways are what real servers were seen to
send back: nothing, far too much, bytes that are not UTF-8, the prompt again, a tensor of the
wrong shape or type.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

WAY = re.compile(rb"misbehave: (\w+)")
GOOD = b"value + 1"


def answer(prompt: bytes) -> np.ndarray:
    found = WAY.search(prompt)
    way = found.group(1).decode() if found else "good"
    texts = {
        "good": GOOD,
        "empty": b"",
        "huge": b"x" * 100_000,
        "invalid_utf8": b"value \xff\xfe\xc3 + 1",
        "echo": prompt,
    }
    if way in texts:
        return np.array([[texts[way]]], dtype=np.object_)
    if way == "wrong_shape":  # three answers for one request
        return np.array([[[GOOD, GOOD, GOOD]]], dtype=np.object_)
    if way == "wrong_type":  # numbers where text belongs
        return np.array([[1, 2, 3]], dtype=np.int32)
    raise ValueError(f"unknown way to misbehave: {way}")


class TritonPythonModel:
    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            prompts = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy()
            output = answer(bytes(prompts.reshape(-1)[0]))
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("text_output", output)]))
        return responses
