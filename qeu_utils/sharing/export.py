"""Share a trained stage: the adapter with a model card, a merged 16-bit model, a GGUF file
(for llama.cpp, Ollama, LM Studio), and a Hub upload — the last only when asked.

GGUF conversion uses llama.cpp's own ``convert_hf_to_gguf.py``. It is not on PyPI by itself;
the maintained ``llama-cpp-python`` source distribution vendors llama.cpp — the converter
*and* the ``gguf-py`` it was written against — so we fetch that sdist once with
``pip download`` (PyPI is reachable here and in CI), extract just those files into the qeu
cache, and run the converter in a subprocess with its own ``gguf-py`` first on the path
(the converter does that itself). Pinning one sdist pins converter and ``gguf`` together;
the installed ``gguf`` package (which transformers uses to *read* GGUF) is not touched.
Third-party repackagings of the converter on PyPI install a second top-level ``gguf``
package over the real one, so we do not use them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import deque
from pathlib import Path

from qeu_utils.core.atomic import atomic_directory, atomic_write_text, current_umask
from qeu_utils.core.resources import cache_dir, pip_download
from qeu_utils.evaluation.tables import compare
from qeu_utils.model.convert import ModelNotAvailableError
from qeu_utils.model.gemma import GEMMA3_HUB_ID, GEMMA_PROHIBITED_USE_URL, GEMMA_TERMS_URL
from qeu_utils.model.models import _HUB_ID, SMOLLM2_HUB_ID, model_type_of, resolve_model
from qeu_utils.sharing.chat import reply
from qeu_utils.training.runs import load_trained

log = logging.getLogger(__name__)

CONVERTER_SDIST = "llama-cpp-python==0.3.36"
GGUF_TYPES = ("f16", "f32", "q8_0")
# Files of a stage directory that make up the adapter on the Hub (no checkpoints, and no
# lineage.json / config.yaml: they hold local absolute paths).
ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors", "README.md", "NOTICE",
                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "chat_template.jinja", "evaluation.md", "loss_curve.png"]
_DONE = ".qeu-complete"


# --- which stage ---------------------------------------------------------------------------


def stage_dir_of(path: str | os.PathLike, stage: int | None = None) -> Path:
    """A stage's output directory from ``RUN_DIR`` + ``stage`` or from the directory itself."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    target = path / f"stage{stage}" if stage is not None else path
    if not (target / "lineage.json").is_file():
        found = sorted(p.name for p in path.glob("stage*") if (p / "lineage.json").is_file())
        hint = (f"stages in {path}: {', '.join(found)}; pass --stage N" if found
                else "pass a stage output directory (it holds lineage.json) or RUN_DIR --stage N")
        raise FileNotFoundError(f"{target} is not a trained stage (no lineage.json); {hint}")
    return target


# --- model card ----------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def model_card(stage_dir: str | os.PathLike) -> str:
    """README.md for the adapter: base model, lineage, data, budgets, evaluation."""
    import yaml

    stage_dir = Path(stage_dir)
    lineage = _read_json(stage_dir / "lineage.json") or {}
    config_file = stage_dir / "config.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() \
        else {}
    summary = _read_json(stage_dir / "summary.json") or {}
    evaluation = _read_json(stage_dir / "evaluation.json")
    base = lineage.get("base_model", "unknown")
    hub_base = _hub_id(base)
    stage = lineage.get("stage", "?")
    merged = [Path(p).name for p in lineage.get("merged_adapters") or []]
    gemma = is_gemma(base)
    lines = [
        "---",
        *([f"base_model: {hub_base}"] if hub_base else []),
        *(["license: gemma"] if gemma else []),
        "library_name: peft",
        "tags: [lora, qeu-initialization-curriculum, japanese]",
        "---",
        "",
        f"# QEU curriculum, stage {stage}: LoRA adapter",
        "",
        "A LoRA adapter trained with `qeu_utils` (the QEU initialization curriculum for",
        "Japanese fine-tuning: stage 1 initialization data → stage 2 revised Dolly-ja →",
        "stage 3 your own data).",
        "",
        "## Lineage",
        "",
        f"- base model: `{base}`" + (f" ({hub_base} on the Hub)" if hub_base not in (None, base)
                                     else ""),
    ]
    if merged:
        lines.append("- merged into the base before this stage, in order: "
                     + ", ".join(f"`{m}`" for m in merged)
                     + " — this adapter only works on top of them (use the merged export)")
    if lineage.get("continued_adapter"):
        lines.append(f"- continues training the adapter of "
                     f"`{Path(lineage['continued_adapter']).name}`")
    lines.append(f"- prompt template: `{lineage.get('template', '?')}`; precision: "
                 f"`{lineage.get('precision', '?')}`")
    lines += ["", "## Data and budget", "",
              f"- dataset: `{Path(str(config.get('dataset', lineage.get('dataset', '?')))).name}`"]
    budget = {k: config.get(k) for k in ("num_train_epochs", "max_steps", "learning_rate",
                                         "per_device_train_batch_size",
                                         "gradient_accumulation_steps", "max_length")
              if k in config}
    if budget:
        lines.append("- " + ", ".join(f"{k} {v}" for k, v in budget.items()))
    if config.get("lora_r"):
        lines.append(f"- LoRA r {config['lora_r']}, alpha {config.get('lora_alpha')}, dropout "
                     f"{config.get('lora_dropout')}, target modules "
                     f"{config.get('lora_target_modules')}")
    if summary:
        loss = summary.get("train_loss")
        lines.append(f"- trained {summary.get('global_step')} steps"
                     + (f", final train loss {loss:.4f}" if isinstance(loss, float) else ""))
    lines += ["", "## Evaluation (held-out, before → after this stage)", ""]
    if evaluation and "before" in evaluation and "after" in evaluation:
        lines.append(compare(evaluation["before"], evaluation["after"]).rstrip())
    else:
        lines.append("Not evaluated (the stage ran with `evaluate: false` or had no eval split).")
    lines += ["", "## Use", "", "```python",
              "# from the stage directory: base + earlier stages + this adapter",
              "from qeu_utils.training.runs import load_trained",
              "model, tokenizer = load_trained(\"path/to/this/stage\")"]
    if hub_base and not merged:
        lines += ["# from the Hub",
                  "from peft import PeftModel",
                  "from transformers import AutoModelForCausalLM",
                  f"base = AutoModelForCausalLM.from_pretrained(\"{hub_base}\")",
                  "model = PeftModel.from_pretrained(base, \"THIS_REPO\")"]
    lines += ["```", ""]
    if gemma:
        lines += ["## License", "", GEMMA_NOTICE,
                  "This adapter, and any model merged or converted from it, is a Model Derivative",
                  "under those terms: share it with a copy of them and their use restrictions (the",
                  f"[Prohibited Use Policy]({GEMMA_PROHIBITED_USE_URL})). `qeu_utils` itself never",
                  "redistributes Gemma's weights.", ""]
    return "\n".join(lines)


# The notice Gemma's terms (section 3.1) ask every distributed copy of a derivative to carry.
GEMMA_NOTICE = ("Gemma is provided under and subject to the Gemma Terms of Use found at "
                f"{GEMMA_TERMS_URL}\n")


def is_gemma(base: str) -> bool:
    """Whether a base model is a Gemma model (its terms then travel with every export)."""
    return str(model_type_of(base) or "").startswith("gemma") or "gemma" in str(base).lower()


def _hub_id(base: str) -> str | None:
    """The Hub id of a base model for the card's metadata; None for local paths and aliases
    without one (tiny-random)."""

    if base == "smollm2-135m-instruct":
        return SMOLLM2_HUB_ID
    if base == "gemma3-270m":
        return GEMMA3_HUB_ID
    return base if _HUB_ID.match(str(base)) and not Path(base).exists() else None


def write_card(stage_dir: str | os.PathLike) -> Path:
    """Write the model card as the stage's README.md (replacing PEFT's generic one), and for a
    Gemma base the NOTICE its terms ask for."""
    path = Path(stage_dir) / "README.md"
    atomic_write_text(path, model_card(stage_dir))
    if is_gemma(_base_of(stage_dir)):
        atomic_write_text(Path(stage_dir) / "NOTICE", GEMMA_NOTICE)
    return path


def _sentencepiece_file(base: str) -> Path | None:
    """The base model's ``tokenizer.model`` when its local directory has one (gemma3-270m's
    cache does: ``model.spm``), else None."""
    try:
        path = Path(resolve_model(base)) / "tokenizer.model"
    except ModelNotAvailableError:
        return None
    return path if path.is_file() else None


def _base_of(stage_dir: str | os.PathLike) -> str:
    return (_read_json(Path(stage_dir) / "lineage.json") or {}).get("base_model", "unknown")


def push_to_hub(stage_dir: str | os.PathLike, repo_id: str, private: bool = True) -> str:
    """Upload the adapter and its card to a Hub model repo. Only called when asked; the token
    comes from ``HF_TOKEN`` or ``huggingface-cli login`` and is never printed."""
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(stage_dir),
                      allow_patterns=ADAPTER_FILES,
                      commit_message="Upload QEU curriculum LoRA adapter (qeu_utils)")
    return f"https://huggingface.co/{repo_id}"


_upload = push_to_hub  # export()'s push_to_hub argument hides the function's name


# --- merged model ----------------------------------------------------------------------------


def merged_model(stage_dir: str | os.PathLike):
    """``(model, tokenizer)``: base + every merged earlier stage + this adapter, merged, fp32
    on CPU (exact; the 16-bit cast happens when saving)."""
    import torch

    model, tokenizer = load_trained(stage_dir, device="cpu", dtype=torch.float32)
    model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def save_merged(model, tokenizer, out_dir: str | os.PathLike, dtype: str = "bfloat16",
                tokenizer_model: Path | None = None) -> Path:
    """Save a merged model as safetensors in ``dtype`` (written to a temp dir, then renamed).
    The model is cast in place: save 16-bit last, after anything that needs fp32.
    ``tokenizer_model``: the base's SentencePiece file, copied beside the tokenizer (llama.cpp's
    converter reads a SentencePiece vocabulary only from there)."""
    import torch

    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        model.to(getattr(torch, dtype))
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if tokenizer_model is not None:
            shutil.copyfile(tokenizer_model, tmp / "tokenizer.model")
        for file in tmp.iterdir():  # some writers make private 0600 files; use the usual mode
            file.chmod(0o666 & ~current_umask())
    return out_dir


# --- GGUF ------------------------------------------------------------------------------------


def converter_dir() -> Path:
    """llama.cpp's converter and its gguf-py, extracted once from the pinned sdist into the
    qeu cache. ``$QEU_LLAMA_CPP_SDIST`` may name an already downloaded sdist (offline use)."""
    name = CONVERTER_SDIST.replace("==", "-")
    target = cache_dir() / "tools" / name
    if (target / _DONE).is_file():
        return target
    sdist = os.environ.get("QEU_LLAMA_CPP_SDIST")
    with tempfile.TemporaryDirectory() as download:
        if not sdist:
            log.info("fetching llama.cpp's GGUF converter: pip download %s (once, ~77 MB)",
                     CONVERTER_SDIST)
            how = "Download the sdist elsewhere and set QEU_LLAMA_CPP_SDIST=<file>."
            try:
                pip_download(CONVERTER_SDIST, download, "--no-binary", ":all:")
            except RuntimeError as err:
                raise RuntimeError(f"could not fetch the GGUF converter: {err}. {how}") from err
            found = sorted(Path(download).glob("*.tar.gz"))
            if not found:
                raise RuntimeError(f"could not fetch the GGUF converter: pip left no sdist. {how}")
            sdist = found[0]
        _extract_converter(Path(sdist), target)
    return target


def _extract_converter(sdist: Path, target: Path) -> None:
    wanted = ("vendor/llama.cpp/convert_hf_to_gguf.py", "vendor/llama.cpp/conversion/",
              "vendor/llama.cpp/gguf-py/", "vendor/llama.cpp/LICENSE")
    try:
        with tarfile.open(sdist) as tar, atomic_directory(target) as tmp:
            members = []
            for member in tar.getmembers():
                _, _, inner = member.name.partition("/")
                if member.isfile() and inner.startswith(wanted):
                    member.name = inner.removeprefix("vendor/llama.cpp/")
                    members.append(member)
            if not any(m.name == "convert_hf_to_gguf.py" for m in members):
                raise RuntimeError(f"{sdist} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
            tar.extractall(tmp, members=members, filter="data")
            (tmp / _DONE).write_text(f"extracted from {sdist.name}\n")
    except tarfile.TarError as err:
        raise RuntimeError(f"{sdist} is not a readable sdist: {err}") from err


def convert_to_gguf(model_dir: str | os.PathLike, gguf_file: str | os.PathLike,
                    gguf_type: str = "f16") -> Path:
    """Convert a Hugging Face model directory to one GGUF file with llama.cpp's converter.
    Its progress bar is shown as it runs; the file appears only when conversion succeeded."""
    if gguf_type not in GGUF_TYPES:
        raise ValueError(f"gguf_type must be one of {', '.join(GGUF_TYPES)}, got {gguf_type!r}")
    gguf_file = Path(gguf_file)
    if gguf_file.suffix != ".gguf":
        raise ValueError(f"the GGUF file name must end in .gguf, got {gguf_file}")
    try:
        import sentencepiece  # noqa: F401 — the converter imports it for every Llama vocab
    except ImportError as err:
        raise ImportError("GGUF conversion needs sentencepiece: pip install sentencepiece") \
            from err
    script = converter_dir() / "convert_hf_to_gguf.py"
    gguf_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = gguf_file.with_name(f".{gguf_file.name}.part")
    cmd = [sys.executable, str(script), str(model_dir), "--outfile", str(tmp),
           "--outtype", gguf_type]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    log.info("converting %s to %s (%s)", model_dir, gguf_file, gguf_type)
    tail = _run_showing_progress(cmd, env)
    if tail is not None:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp's convert_hf_to_gguf.py failed on {model_dir}:\n{tail}")
    os.replace(tmp, gguf_file)
    return gguf_file


def _run_showing_progress(cmd: list[str], env: dict) -> str | None:
    """Run ``cmd``, passing its progress bar (tqdm's "Writing:" line, redrawn with \\r) on to
    our stderr — its many INFO lines only with --debug; return None on success, else its
    last lines for the error message."""

    kept: deque[str] = deque(maxlen=12)
    debug = log.isEnabledFor(logging.DEBUG)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as proc:
        pending = ""
        while chunk := proc.stdout.read1(4096):
            pending += chunk.decode("utf-8", errors="replace")
            *segments, pending = re.split(r"(?<=[\r\n])", pending)
            for segment in segments:
                text = segment.rstrip("\r\n")
                if text:
                    kept.append(text)
                if debug or text.startswith("Writing:"):
                    sys.stderr.write(segment)
        if pending:
            kept.append(pending)
    if not debug:
        sys.stderr.write("\n")
    return None if proc.returncode == 0 else "\n".join(kept)


def load_gguf(gguf_file: str | os.PathLike):
    """``(model, tokenizer)`` read back from a GGUF file by transformers (dequantized, fp32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name,
                                                 dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def compare_models(reference, candidate, prompts: list[str], *, max_new_tokens: int = 24) -> dict:
    """Next-token logits (max |Δ| over the prompt positions) and greedy answers of two
    ``(model, tokenizer)`` pairs; the prompts are tokenized by the reference tokenizer."""
    import torch

    max_delta = 0.0
    answers = []
    for prompt in prompts:
        ids = reference[1](prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            a = reference[0](input_ids=ids).logits.float()
            b = candidate[0](input_ids=ids).logits.float()
        max_delta = max(max_delta, (a - b).abs().max().item())
        answers.append((reply(*reference, prompt, max_new_tokens=max_new_tokens),
                        reply(*candidate, prompt, max_new_tokens=max_new_tokens)))
    return {"max_abs_logit_diff": max_delta, "answers": answers,
            "same_greedy": all(x == y for x, y in answers)}


# --- all of it -------------------------------------------------------------------------------


def _gguf_from(model, tokenizer, gguf_file: Path, gguf_type: str, verify: bool,
               tokenizer_model: Path | None) -> dict:
    """Convert an fp32 merged model (so an f32 GGUF is exact and f16 rounds once) and check
    the file by reading it back: next-token logits and greedy answers."""
    gguf_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=gguf_file.parent, prefix=".qeu-export-") as tmp:
        save_merged(model, tokenizer, Path(tmp) / "fp32", "float32", tokenizer_model)
        result = {"gguf": str(convert_to_gguf(Path(tmp) / "fp32", gguf_file, gguf_type))}
    if verify:
        from qeu_utils.sharing.chat import QUESTIONS

        check = compare_models((model, tokenizer), load_gguf(gguf_file),
                               [q["prompt"] for q in QUESTIONS[:2]])
        result["gguf check"] = (f"max |Δlogit| {check['max_abs_logit_diff']:.4g}, "
                                f"same greedy answers: {check['same_greedy']}")
        log.info("GGUF check: %s", result["gguf check"])
    return result


def export(path: str | os.PathLike, *, stage: int | None = None, merged_dir=None, gguf_file=None,
           gguf_type: str = "f16", merged_dtype: str = "bfloat16", push_to_hub: str | None = None,
           private: bool = False, verify: bool = True) -> dict:
    """Everything asked for one stage: always the model card; the merged model, the GGUF
    (checked against the merged model when ``verify``) and the Hub upload when asked.
    Returns what was written where."""
    if gguf_type not in GGUF_TYPES:
        raise ValueError(f"gguf_type must be one of {', '.join(GGUF_TYPES)}, got {gguf_type!r}")
    if gguf_file is not None and Path(gguf_file).suffix != ".gguf":
        raise ValueError(f"the GGUF file name must end in .gguf, got {gguf_file}")
    stage_dir = stage_dir_of(path, stage)
    result = {"card": str(write_card(stage_dir))}
    if merged_dir is not None or gguf_file is not None:
        model, tokenizer = merged_model(stage_dir)
        spm = _sentencepiece_file(_base_of(stage_dir))
        if gguf_file is not None:
            result.update(_gguf_from(model, tokenizer, Path(gguf_file), gguf_type, verify, spm))
        if merged_dir is not None:  # last: it casts the model to 16 bits
            result["merged"] = str(save_merged(model, tokenizer, merged_dir, merged_dtype, spm))
            notice = stage_dir / "NOTICE"  # write_card's, for a Gemma base
            if notice.is_file():
                shutil.copyfile(notice, Path(merged_dir) / "NOTICE")
    if push_to_hub:
        result["hub"] = _upload(stage_dir, push_to_hub, private=private)
    return result
