"""Triton `preprocessing` step: text -> token ids, words -> TensorRT-LLM word lists.

Uses the `tokenizers` library on tokenizer.json directly: AutoTokenizer would pull torch into this
stub (+0.5 GB, +3 s at start). The tokenizer folder is the `tokenizer_dir` parameter (the rendered
TensorRT-LLM repository copies this file) or $AIXAUDIT_CPU_MODEL_DIR (the CPU repository).

aiXcoder prompts (text holding its FIM sentinels) are tokenised the way aiXcoder's reference
builder does it, not as one string: see `fim_ids`. Stop words that name a sentinel or `</s>` become
that one token id, since generation emits the token, never its spelling. The algorithm stays in
this one file, which both repositories copy and Triton loads by path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

MODEL_DIR_ENV = "AIXAUDIT_CPU_MODEL_DIR"

BOS_TEXT, EOS_TEXT = "<s>", "</s>"
FIM_SENTINELS = ("▁<AIX-SPAN-PRE>", "▁<AIX-SPAN-POST>", "▁<AIX-SPAN-MIDDLE>")
SENTINELS = (BOS_TEXT, *FIM_SENTINELS)
THROWAWAY = "☺"  # aiXcoder's reference encodes the suffix behind this and drops its tokens


def is_fim_prompt(text: str) -> bool:
    """An aiXcoder prompt starts with `▁<AIX-SPAN-PRE>` (after an optional `<s>`)."""
    return text.removeprefix(BOS_TEXT).startswith(FIM_SENTINELS[0])


def fim_ids(text: str, *, encode: Callable[[str], list[int]], ids: Mapping[str, int]) -> list[int]:
    """Token ids of an aiXcoder prompt, as aiXcoder-7B's reference `Tokenizer.encode` makes them.

    `<s>` and each sentinel are ONE id (`ids`), never their spelling. Every other piece is encoded
    on its own by `encode` (no special tokens), except the suffix (the piece after
    `▁<AIX-SPAN-POST>`): SentencePiece would start it with a space mark that the file does not
    hold, so it is encoded behind a throw-away character whose ids are then dropped. Encoding the
    prompt as one string gives other ids: sentinels spelled out, and a space mark after them.
    Only the prompt's frame is special: the leading `<s>▁<AIX-SPAN-PRE>`, then the first
    `▁<AIX-SPAN-POST>` and the first `▁<AIX-SPAN-MIDDLE>` after it. The same spellings inside
    the code (a file about prompts, say) are code.
    """
    for token in SENTINELS:
        if token not in ids:
            raise ValueError(
                f"text_input holds aiXcoder's {token!r}, a token this tokenizer lacks: "
                "use the prompt profile of the served model"
            )
    pre, post, middle = FIM_SENTINELS
    head, has_post, rest = text.removeprefix(BOS_TEXT).removeprefix(pre).partition(post)
    suffix, has_middle, tail = rest.partition(middle)
    if not (has_post and has_middle):
        raise ValueError(f"text_input starts like an aiXcoder prompt but lacks {post} or {middle}")
    result = [ids[BOS_TEXT], ids[pre], *encode(head), ids[post]]
    if suffix:
        result.extend(encode(THROWAWAY + suffix)[len(encode(THROWAWAY)) :])
    return [*result, ids[middle], *encode(tail)]


def single_token_words(tokenizer: Tokenizer) -> dict[str, int]:
    """Words that are one token: `<s>`, `</s>` and the sentinels, also spelt without their space
    mark, as clients send stop words (`<AIX-SPAN-PRE>`). Only tokens the vocabulary has."""
    found: dict[str, int] = {}
    for token in (BOS_TEXT, EOS_TEXT, *FIM_SENTINELS):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            found[token] = token_id
            found[token.removeprefix("▁")] = token_id
    return found


def tokenizer_folder(parameters: dict[str, Any]) -> Path:
    """The `tokenizer_dir` parameter (the rendered GPU repository), else $AIXAUDIT_CPU_MODEL_DIR."""
    value = parameters.get("tokenizer_dir", {}).get("string_value") or os.environ.get(
        MODEL_DIR_ENV, ""
    )
    if not (Path(value) / "tokenizer.json").is_file():
        raise pb_utils.TritonModelException(
            f"No tokenizer.json in {value!r}: set the tokenizer_dir parameter or {MODEL_DIR_ENV}"
        )
    return Path(value)


def special_ids(folder: Path, tokenizer: Tokenizer) -> dict[str, int | None]:
    """bos/eos/pad ids: generation config, then config.json, then tokenizer_config.json's tokens."""
    found: dict[str, int | None] = dict.fromkeys(("bos", "eos", "pad"))
    for name in ("generation_config.json", "config.json", "tokenizer_config.json"):
        path = folder / name
        data = json.loads(path.read_text()) if path.is_file() else {}
        for key in found:
            value = data.get(f"{key}_token_id")
            token = data.get(f"{key}_token")
            if isinstance(value, list):
                value = value[0] if value else None
            if value is None and token is not None:
                value = tokenizer.token_to_id(
                    token["content"] if isinstance(token, dict) else token
                )
            if found[key] is None and value is not None:
                found[key] = int(value)
    if found["pad"] is None:
        found["pad"] = found["eos"]
    return found


def strings(request: Any, name: str) -> list[list[str]] | None:
    """A STRING input as one list of words per batch row (None when the input is absent)."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return [
        [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in row]
        for row in tensor.as_numpy()
    ]


def ints(request: Any, name: str, default: int | None, rows: int) -> np.ndarray:
    """An INT32 [1] input as a [rows, 1] array, filled with `default` when absent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is not None:
        return tensor.as_numpy().astype(np.int32).reshape(rows, 1)
    if default is None:
        raise ValueError(f"{name} is required: the model defines no default for it")
    return np.full((rows, 1), default, dtype=np.int32)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        folder = tokenizer_folder(parameters)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.ids = special_ids(folder, self.tokenizer)
        add_bos = parameters.get("add_bos_token", {}).get("string_value", "true")
        self.add_bos = add_bos.lower() == "true" and self.ids["bos"] is not None
        self.single_ids = single_token_words(self.tokenizer)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tensors(request)))
            except (ValueError, UnicodeDecodeError) as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _tensors(self, request: Any) -> list[Any]:
        queries = strings(request, "QUERY") or []
        rows = len(queries)
        prompts = [self._encode(row[0]) for row in queries]
        width = max(len(ids) for ids in prompts)
        input_ids = np.full((rows, width), self.ids["pad"] or 0, dtype=np.int32)
        for index, ids in enumerate(prompts):
            input_ids[index, : len(ids)] = ids
        lengths = np.array([[len(ids)] for ids in prompts], dtype=np.int32)
        output_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy()
        return [
            pb_utils.Tensor("INPUT_ID", input_ids),
            pb_utils.Tensor("REQUEST_INPUT_LEN", lengths),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", output_len.astype(np.int32).reshape(rows, 1)),
            pb_utils.Tensor(
                "STOP_WORDS_IDS", self._word_lists(strings(request, "STOP_WORDS_DICT"), rows)
            ),
            pb_utils.Tensor(
                "BAD_WORDS_IDS", self._word_lists(strings(request, "BAD_WORDS_DICT"), rows)
            ),
            pb_utils.Tensor("OUT_END_ID", ints(request, "END_ID", self.ids["eos"], rows)),
            pb_utils.Tensor("OUT_PAD_ID", ints(request, "PAD_ID", self.ids["pad"], rows)),
        ]

    def _plain(self, text: str) -> list[int]:
        """The tokenizer's own post-processor stays out: it would double a BOS the text holds."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _encode(self, text: str) -> list[int]:
        if is_fim_prompt(text):
            ids = fim_ids(text, encode=self._plain, ids=self.single_ids)
        else:
            ids = self._plain(text)
        if self.add_bos and (not ids or ids[0] != self.ids["bos"]):
            ids = [self.ids["bos"], *ids]
        if not ids:
            raise ValueError("text_input is empty")
        return ids

    def _word_lists(self, words: list[list[str]] | None, rows: int) -> np.ndarray:
        """TensorRT-LLM's [rows, 2, n] format: concatenated ids, then end offsets padded with -1."""
        encoded = []
        for row in words or [[]] * rows:
            pieces = [
                [self.single_ids[word]] if word in self.single_ids else self._plain(word)
                for word in row
            ]
            encoded.append([piece for piece in pieces if piece])
        width = max([1, *(sum(len(piece) for piece in row) for row in encoded)])
        lists = np.zeros((rows, 2, width), dtype=np.int32)
        lists[:, 1, :] = -1
        for index, pieces in enumerate(encoded):
            flat = [token for piece in pieces for token in piece]
            lists[index, 0, : len(flat)] = flat
            offsets = np.cumsum([len(piece) for piece in pieces], dtype=np.int32)
            lists[index, 1, : len(offsets)] = offsets
        return lists
