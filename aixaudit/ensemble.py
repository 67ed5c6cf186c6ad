"""The one definition of the Triton ensemble's interface (TensorRT-LLM `ensemble` shape).

The CPU repository (`model_repo/cpu`), the rendered TensorRT-LLM repository and the client
all follow this, and a test checks every `config.pbtxt` against it so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton config name, e.g. "TYPE_STRING"
    dims: tuple[int, ...]
    optional: bool = False

    @property
    def wire_type(self) -> str:
        """The datatype name the client protocol uses ("BYTES", "INT32", ...)."""
        return _WIRE_TYPES[self.data_type]


_WIRE_TYPES = {
    "TYPE_STRING": "BYTES",
    "TYPE_INT32": "INT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_FP32": "FP32",
    "TYPE_BOOL": "BOOL",
}

ENSEMBLE_NAME = "ensemble"
MAX_BATCH_SIZE = 8

ENSEMBLE_INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec("text_input", "TYPE_STRING", (1,)),
    TensorSpec("max_tokens", "TYPE_INT32", (1,)),
    TensorSpec("bad_words", "TYPE_STRING", (-1,), optional=True),
    TensorSpec("stop_words", "TYPE_STRING", (-1,), optional=True),
    TensorSpec("end_id", "TYPE_INT32", (1,), optional=True),
    TensorSpec("pad_id", "TYPE_INT32", (1,), optional=True),
    TensorSpec("top_k", "TYPE_INT32", (1,), optional=True),
    TensorSpec("top_p", "TYPE_FP32", (1,), optional=True),
    TensorSpec("temperature", "TYPE_FP32", (1,), optional=True),
    TensorSpec("seed", "TYPE_UINT64", (1,), optional=True),
)

ENSEMBLE_OUTPUTS: tuple[TensorSpec, ...] = (TensorSpec("text_output", "TYPE_STRING", (-1,)),)

# What aixaudit's client sends on every request: the server must declare these inputs.
CLIENT_INPUTS = ("text_input", "max_tokens", "stop_words")

# What a served ensemble says about itself: string parameters of its config, read by the client
# (get_model_config), so that the server's URL alone gives the prompt format and the tokenizer.
DECLARED_PROFILE = "prompt_profile"  # aixaudit.prompts profile name: "aixcoder", "l2r"
DECLARED_MODEL_ID = "model_id"  # e.g. "aiXcoder/aixcoder-7b-base"
DECLARED_WEIGHTS_SHA256 = "weights_sha256"  # of the weights the engine was built from
DECLARED_TOKENIZER_DIR = "tokenizer_dir"  # where the tokenizer.json is, as the server sees it
DECLARED_TOKENIZER_SHA256 = "tokenizer_sha256"  # of that tokenizer.json: a client's copy must match
DECLARED_KEYS = (
    DECLARED_PROFILE,
    DECLARED_MODEL_ID,
    DECLARED_WEIGHTS_SHA256,
    DECLARED_TOKENIZER_DIR,
    DECLARED_TOKENIZER_SHA256,
)
