"""Triton `tensorrt_llm` stand-in: TensorRT-LLM's tensors, a transformers model behind.

Triton's dynamic batcher hands `execute` up to 8 requests; their prompts are left-padded with an
attention mask and run through ONE `generate()` (per distinct sampling setting: greedy requests all
share one). Each row stops at its own `request_output_len`, `end_id` or stop word, so batching does
not change a greedy fp32 answer. Outputs have TensorRT-LLM's shapes, `output_ids` [beam, tokens]
and `sequence_length` [beam] per request (one beam), so both repositories share the postprocessing.
They hold the generated tokens only (like TensorRT-LLM's `exclude_input_in_output`), padded with
`end_id`; `sequence_length` says how many are real.

The model runs on the CPU; $AIXAUDIT_DEVICE=cuda (or cuda:N) puts it on a GPU instead, so the same
repository measures a GPU without TensorRT-LLM.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from transformers import (
    AutoModelForCausalLM,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

MODEL_DIR_ENV = "AIXAUDIT_CPU_MODEL_DIR"
THREADS_ENV = "AIXAUDIT_CPU_THREADS"
DEVICE_ENV = "AIXAUDIT_DEVICE"

Sampling = tuple[float, int, float, int | None] | None  # temperature, top_k, top_p, seed


@dataclass
class Row:
    """One prompt of a request (a request may carry several rows)."""

    request: int
    ids: list[int]
    limit: int
    end_id: int
    pad_id: int
    stops: list[list[int]]
    bad: list[list[int]]
    sampling: Sampling


def word_lists(request: Any, name: str, rows: int) -> list[list[list[int]]]:
    """TensorRT-LLM's [rows, 2, n] word lists (ids, end offsets padded with -1) as id sequences."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return [[] for _ in range(rows)]
    words = []
    for ids, offsets in tensor.as_numpy().reshape(rows, 2, -1):
        bounds = [0, *(int(end) for end in offsets if end > 0)]
        words.append([ids[start:end].tolist() for start, end in pairwise(bounds)])
    return words


def model_device(value: str) -> torch.device:
    """The device $AIXAUDIT_DEVICE names: "cpu" when unset, or a CUDA device torch can see."""
    try:
        device = torch.device(value or "cpu")
    except RuntimeError as exc:
        raise pb_utils.TritonModelException(f"{DEVICE_ENV}={value!r} is not a device") from exc
    if device.type not in ("cpu", "cuda"):
        raise pb_utils.TritonModelException(f"{DEVICE_ENV} must be cpu or cuda, not {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pb_utils.TritonModelException(f"{DEVICE_ENV}={value!r}, but torch sees no GPU")
    return device


def scalars(request: Any, name: str, rows: int) -> list[Any] | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy().reshape(rows).tolist()


def ends_with(sequence: list[int], words: list[list[int]]) -> bool:
    return any(len(word) <= len(sequence) and sequence[-len(word) :] == word for word in words)


class RowStops(StoppingCriteria):
    """Per-row stopping: its own end id, token limit and stop words; records where each stopped."""

    def __init__(self, rows: list[Row], width: int) -> None:
        self.rows = rows
        self.width = width
        self.lengths = [row.limit for row in rows]
        self.done = [False] * len(rows)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        for index, row in enumerate(self.rows):
            if self.done[index]:
                continue
            generated = input_ids[index, self.width :].tolist()
            if (
                generated[-1] == row.end_id
                or len(generated) >= row.limit
                or ends_with(generated, row.stops)
            ):
                self.done[index] = True
                self.lengths[index] = len(generated)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


class RowBadWords(LogitsProcessor):
    """Per-row bad words: forbid the token that would complete one."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for index, row in enumerate(self.rows):
            history = input_ids[index].tolist()
            for word in row.bad:
                if len(word) == 1 or ends_with(history, [word[:-1]]):
                    scores[index, word[-1]] = -float("inf")
        return scores


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        folder = Path(os.environ.get(MODEL_DIR_ENV, ""))
        if not (folder / "config.json").is_file():
            raise pb_utils.TritonModelException(
                f"{MODEL_DIR_ENV} must name the converted model folder "
                f"(no {folder / 'config.json'})"
            )
        self.device = model_device(os.environ.get(DEVICE_ENV, ""))
        threads = int(os.environ.get(THREADS_ENV) or 0) or len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model = self.model.to(self.device).eval()
        config = self.model.generation_config
        eos = config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        self.end_id = 0 if eos is None else int(eos)
        self.pad_id = self.end_id if config.pad_token_id is None else int(config.pad_token_id)
        # Stopping is per row (RowStops); the model-wide defaults must not interfere.
        config.eos_token_id = None
        config.do_sample, config.temperature, config.top_k, config.top_p = False, None, None, None
        self.max_positions = int(
            getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30
        )
        # The first generate() pays one-off set-up costs (seconds): pay them before ready.
        with torch.inference_mode():
            self.model.generate(
                torch.full((2, 4), self.pad_id, device=self.device),
                attention_mask=torch.ones((2, 4), dtype=torch.long, device=self.device),
                max_new_tokens=2,
                pad_token_id=self.pad_id,
            )

    def execute(self, requests: list[Any]) -> list[Any]:
        rows: list[Row] = []
        errors: dict[int, str] = {}
        for index, request in enumerate(requests):
            try:
                rows.extend(self._rows(index, request))
            except ValueError as exc:
                errors[index] = str(exc)
        groups: dict[Sampling, list[Row]] = defaultdict(list)
        for row in rows:
            if row.request not in errors:
                groups[row.sampling].append(row)
        outputs: dict[int, list[int]] = {}
        for sampling, group in groups.items():
            try:
                generated = self._generate(group, sampling)
            except (RuntimeError, ValueError) as exc:
                for row in group:
                    errors[row.request] = f"generation failed: {exc}"
                continue
            outputs.update((id(row), tokens) for row, tokens in zip(group, generated, strict=True))
        return [
            self._response(
                [row for row in rows if row.request == index], outputs, errors.get(index)
            )
            for index in range(len(requests))
        ]

    def _rows(self, index: int, request: Any) -> list[Row]:
        ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
        count = ids.shape[0]
        lengths = scalars(request, "input_lengths", count) or []
        limits = scalars(request, "request_output_len", count) or []
        end_ids = scalars(request, "end_id", count) or [self.end_id] * count
        pad_ids = scalars(request, "pad_id", count) or [self.pad_id] * count
        stops = word_lists(request, "stop_words_list", count)
        bad = word_lists(request, "bad_words_list", count)
        temperature = scalars(request, "temperature", count) or [0.0] * count
        top_k = scalars(request, "runtime_top_k", count) or [0] * count
        top_p = scalars(request, "runtime_top_p", count) or [1.0] * count
        seeds = scalars(request, "random_seed", count) or [None] * count
        rows = []
        for row in range(count):
            length, limit = int(lengths[row]), int(limits[row])
            if length < 1 or length > ids.shape[1]:
                raise ValueError(f"input_lengths {length} does not fit input_ids of {ids.shape[1]}")
            if limit < 1 or length + limit > self.max_positions:
                raise ValueError(
                    f"request_output_len must be 1..{self.max_positions - length} for a prompt "
                    f"of {length} tokens, got {limit}"
                )
            sampling: Sampling = None
            if temperature[row] > 0:
                sampling = (float(temperature[row]), int(top_k[row]), float(top_p[row]), seeds[row])
            rows.append(
                Row(
                    request=index,
                    ids=ids[row, :length].tolist(),
                    limit=limit,
                    end_id=int(end_ids[row]),
                    pad_id=int(pad_ids[row]),
                    stops=stops[row],
                    bad=bad[row],
                    sampling=sampling,
                )
            )
        return rows

    def _generate(self, rows: list[Row], sampling: Sampling) -> list[list[int]]:
        """One generate() for rows that share a sampling setting; each row's generated ids."""
        width = max(len(row.ids) for row in rows)
        input_ids = torch.full((len(rows), width), rows[0].pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, width - len(row.ids) :] = torch.tensor(row.ids)
            mask[index, width - len(row.ids) :] = 1
        stops = RowStops(rows, width)
        options: dict[str, Any] = {"do_sample": False}
        if sampling is not None:
            temperature, top_k, top_p, seed = sampling
            options = {
                "do_sample": True,
                "temperature": temperature,
                "top_k": top_k or None,
                "top_p": top_p if 0 < top_p < 1 else None,
            }
            if seed is not None:
                torch.manual_seed(seed)
        processors = LogitsProcessorList(
            [RowBadWords(rows)] if any(row.bad for row in rows) else []
        )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max(row.limit for row in rows),
                pad_token_id=rows[0].pad_id,
                stopping_criteria=StoppingCriteriaList([stops]),
                logits_processor=processors,
                **options,
            )
        generated = []
        for index, row in enumerate(rows):
            tokens = output[index, width : width + stops.lengths[index]].tolist()
            if tokens and tokens[-1] == row.end_id:
                tokens.pop()
            generated.append(tokens)
        return generated

    def _response(self, rows: list[Row], outputs: dict[int, list[int]], error: str | None) -> Any:
        if error is not None:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(error))
        generated = [outputs[id(row)] for row in rows]
        width = max([1, *(len(tokens) for tokens in generated)])
        output_ids = np.full((len(rows), 1, width), rows[0].end_id, dtype=np.int32)
        for index, tokens in enumerate(generated):
            output_ids[index, 0, : len(tokens)] = tokens
        lengths = np.array([[len(tokens)] for tokens in generated], dtype=np.int32)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("output_ids", output_ids),
                pb_utils.Tensor("sequence_length", lengths),
            ]
        )
