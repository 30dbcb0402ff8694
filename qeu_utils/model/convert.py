"""What every offline model recipe shares: the error that lists what was tried, the cache lock,
and the one-time GGUF → safetensors conversion.

Why convert the GGUF instead of loading it each time: a model loaded with ``gguf_file=``
keeps a GGUF ``quantization_config`` and ``transformers.Trainer`` refuses to train it, even
though its weights are dequantized; and the GGUF load takes ~20 s against < 1 s for the
converted directory.
"""

from __future__ import annotations

from pathlib import Path

from qeu_utils.core.atomic import atomic_directory, file_sha256
from qeu_utils.core.resources import cache_dir

# Marks a finished conversion: a directory without it is a half-written leftover.
DONE = ".qeu-complete"


class ModelNotAvailableError(RuntimeError):
    """The model could not be found or provisioned; the message lists what was tried."""


def cache_lock(name: str):
    """A lock file under the cache, held while one process writes ``name`` into it."""
    from filelock import FileLock

    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / f"{name}.lock"))


def convert_gguf(gguf: Path, target: Path, overrides: dict | None = None) -> Path:
    """Dequantize a GGUF causal LM into a plain safetensors directory (fp32, tokenizer and
    chat template included) at ``target``. Written to a temp dir, then renamed. ``overrides``:
    config fields set before the model is rebuilt (values the GGUF does not carry)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (target / DONE).is_file():
        return target
    gguf = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    # The GGUF quantization_config is what makes Trainer refuse the model; the weights are
    # already dequantized, so rebuild a plain model from the config and copy them over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    tokenizer.model_max_length = config.max_position_embeddings
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / DONE).write_text(f"converted from {gguf.name} sha256={file_sha256(gguf)}\n")
    return target
