"""model_repo/cpu's Python models run outside Triton, on a tiny hand-made tokenizer.

tests/python_backend.py stands in for Triton, so the token-level rules (BOS, padding, TensorRT-LLM
word lists, beams, the stand-in's device) are checked fast and with hand-computed values.
The real server runs the same files in tests/test_local_triton.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from python_backend import FakeModelException, load_model, preprocess, start_model, words
from tokenizers import AddedToken, Tokenizer, decoders, processors
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit

from aixaudit.local_triton import MODEL_DIR_ENV

VOCAB = {"<unk>": 0, "<s>": 1, "</s>": 2, "def": 3, "add": 4, "(": 5, ")": 6, "return": 7}


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tokenizer whose own post-processor adds <s> (as Llama's does) and a generation config."""
    tokenizer = Tokenizer(WordLevel(VOCAB, unk_token="<unk>"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer.add_special_tokens(
        [AddedToken("<s>", special=True), AddedToken("</s>", special=True)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})
    )
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    return tmp_path


def test_bos_is_added_once(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pre = start_model("preprocessing", monkeypatch)
    outputs = preprocess(pre, ["def add", "<s> def add"])
    assert outputs["INPUT_ID"].tolist() == [[1, 3, 4], [1, 3, 4]]
    assert outputs["REQUEST_INPUT_LEN"].tolist() == [[3], [3]]


def test_bos_can_be_turned_off(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pre = start_model("preprocessing", monkeypatch, add_bos_token="false")
    assert preprocess(pre, ["def add"])["INPUT_ID"].tolist() == [[3, 4]]


def test_rows_are_right_padded_and_ids_default_to_the_model(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pre = start_model("preprocessing", monkeypatch)
    outputs = preprocess(pre, ["def", "def add ( )"])
    assert outputs["INPUT_ID"].tolist() == [[1, 3, 2, 2, 2], [1, 3, 4, 5, 6]]
    assert outputs["REQUEST_INPUT_LEN"].tolist() == [[2], [5]]
    assert outputs["REQUEST_OUTPUT_LEN"].tolist() == [[8], [8]]
    assert outputs["OUT_END_ID"].tolist() == [[2], [2]]
    assert outputs["OUT_PAD_ID"].tolist() == [[2], [2]]
    assert outputs["STOP_WORDS_IDS"].tolist() == [[[0], [-1]], [[0], [-1]]]


def test_words_become_tensorrt_llm_word_lists(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pre = start_model("preprocessing", monkeypatch)
    outputs = preprocess(
        pre,
        ["def"],
        STOP_WORDS_DICT=words([["return", "add (", ""]]),
        BAD_WORDS_DICT=words([[")"]]),
        END_ID=np.array([[7]], dtype=np.int32),
    )
    assert outputs["STOP_WORDS_IDS"].tolist() == [[[7, 4, 5], [1, 3, -1]]]
    assert outputs["BAD_WORDS_IDS"].tolist() == [[[6], [1]]]
    assert outputs["OUT_END_ID"].tolist() == [[7]]


def test_tokenizer_dir_parameter_wins_over_the_environment(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(model_dir / "nowhere"))
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(model_dir))
    assert preprocess(pre, ["add"])["INPUT_ID"].tolist() == [[1, 4]]
    with pytest.raises(FakeModelException, match=r"No tokenizer\.json"):
        start_model("postprocessing", monkeypatch)


@pytest.mark.parametrize(
    ("tokens", "lengths", "texts"),
    [
        ([[[3, 4, 2, 2]]], [[2]], [["def add"]]),  # one beam, as both tensorrt_llm models give
        ([[[1, 3, 7]]], [[3]], [["def return"]]),  # special tokens are dropped
        ([[[3, 4, 5], [7, 2, 2]]], [[3, 1]], [["def add (", "return"]]),  # two beams
        ([[[3, 4]], [[7, 2]]], [[2], [1]], [["def add"], ["return"]]),  # two rows
    ],
)
def test_postprocessing_decodes_each_row_and_beam(
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tokens: list[Any],
    lengths: list[list[int]],
    texts: list[list[str]],
) -> None:
    post = start_model("postprocessing", monkeypatch)
    request = {
        "TOKENS_BATCH": np.array(tokens, dtype=np.int32),
        "SEQUENCE_LENGTH": np.array(lengths, dtype=np.int32),
    }
    (response,) = post.execute([request])
    assert response.outputs["OUTPUT"].tolist() == [[t.encode() for t in row] for row in texts]


def test_word_lists_round_trip_into_the_generation_model(monkeypatch: pytest.MonkeyPatch) -> None:
    trtllm = load_model("tensorrt_llm", monkeypatch)
    lists = np.array([[[7, 4, 5], [1, 3, -1]], [[0, 0, 0], [-1, -1, -1]]], dtype=np.int32)
    words = trtllm.word_lists({"stop_words_list": lists}, "stop_words_list", 2)
    assert words == [[[7], [4, 5]], []]
    assert trtllm.word_lists({}, "bad_words_list", 2) == [[], []]
    assert trtllm.ends_with([3, 4, 5], [[7], [4, 5]])
    assert not trtllm.ends_with([5], [[4, 5]])


def test_stand_in_returns_tensorrt_llms_beam_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """output_ids [beam, tokens] and sequence_length [beam] per request, one beam, end_id padded."""
    trtllm = load_model("tensorrt_llm", monkeypatch)
    rows = [
        trtllm.Row(0, [1, 3], 4, end_id=2, pad_id=2, stops=[], bad=[], sampling=None)
        for _ in range(2)
    ]
    outputs = {id(rows[0]): [3, 4, 5], id(rows[1]): [7]}
    response = trtllm.TritonPythonModel()._response(rows, outputs, None)
    assert response.outputs["output_ids"].tolist() == [[[3, 4, 5]], [[7, 2, 2]]]
    assert response.outputs["sequence_length"].tolist() == [[3], [1]]


def test_stand_in_runs_on_the_cpu_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    trtllm = load_model("tensorrt_llm", monkeypatch)
    assert trtllm.model_device("") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trtllm.model_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("value", "gpu", "message"),
    [
        ("cuda", False, "torch sees no GPU"),
        ("meta", True, "must be cpu or cuda"),
        ("gpu0", True, "is not a device"),
    ],
)
def test_stand_in_rejects_a_device_it_cannot_use(
    monkeypatch: pytest.MonkeyPatch, value: str, gpu: bool, message: str
) -> None:
    trtllm = load_model("tensorrt_llm", monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    with pytest.raises(FakeModelException, match=message):
        trtllm.model_device(value)
