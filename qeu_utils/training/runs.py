"""What a stage's output directory holds and stands on: its records, lineage (the base model,
the adapters merged into it, the adapter it continued), and the rule for a rerun into the same
directory (resume only when ``run_config.json`` matches; otherwise move the old run aside with
a notice naming what changed, so a new learning rate never continues an old run)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

import yaml

from qeu_utils.core.atomic import atomic_write_json, file_sha256
from qeu_utils.core.records import read_jsonl
from qeu_utils.model.models import default_device, load_model
from qeu_utils.training.config import StageConfig

log = logging.getLogger(__name__)

# Settings that do not change the trained weights: a run that differs only in these resumes.
RESULT_NEUTRAL = ("output_dir", "logging_steps", "save_steps", "save_total_limit", "evaluate",
                  "eval_dataset", "eval_size", "eval_limit", "probe_max_new_tokens", "merge")
# Settings (and data) the saved evaluation_before.json depends on besides the training ones.
EVALUATION_KEYS = ("eval_dataset", "eval_size", "eval_limit", "probe_max_new_tokens",
                   "eval_sha256")
RUN_CONFIG = "run_config.json"


def current_device() -> str:
    found = default_device()
    # Under `accelerate launch`/torchrun each process owns the GPU of its local rank.
    if found == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return found


def load_records(dataset: str | os.PathLike, eval_dataset=None) -> tuple[list[dict], list[dict]]:
    """Train and eval records from a build directory (train.jsonl, eval.jsonl) or JSONL files."""
    path = Path(dataset)
    if path.is_dir():
        train_file = path / "train.jsonl"
        if not train_file.is_file():
            raise FileNotFoundError(f"{path}: no train.jsonl (build one with `build init`)")
        eval_dataset = eval_dataset or (path / "eval.jsonl" if (path / "eval.jsonl").is_file()
                                        else None)
        path = train_file
    train = read_jsonl(path)
    held_out = read_jsonl(eval_dataset) if eval_dataset else []
    return train, held_out


def lineage_of(output_dir: str | os.PathLike) -> dict:
    path = Path(output_dir) / "lineage.json"
    if not path.is_file():
        raise FileNotFoundError(f"{output_dir}: no lineage.json; is it a qeu_utils training run?")
    return json.loads(path.read_text(encoding="utf-8"))


def load_stack(base: str, merged_adapters: list[str], adapter: str | None, *, device: str,
               dtype=None, trainable: bool = False, quantization=None):
    """The base model with earlier stages merged in, then ``adapter`` on top (or none)."""
    from peft import PeftModel

    model, tokenizer = load_model(base, device=device, dtype=dtype, quantization=quantization)
    for merged in merged_adapters:
        model = PeftModel.from_pretrained(model, merged).merge_and_unload()
    if adapter:
        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    return model, tokenizer


def load_trained(output_dir: str | os.PathLike, *, device: str | None = None, dtype=None):
    """Rebuild a trained stage (base + merged earlier stages + its adapter) for inference."""
    lineage = lineage_of(output_dir)
    model, tokenizer = load_stack(lineage["base_model"], lineage["merged_adapters"],
                                  str(output_dir), device=device or current_device(),
                                  dtype=dtype)
    model.eval()
    return model, tokenizer


def starting_point(config: StageConfig) -> dict:
    """What this stage stands on: the base model, adapters merged into it, the adapter to
    keep training (continue) or none (fresh LoRA)."""
    stage = config.stage
    if not stage.init_from:
        return {"base_model": config.model.model_name_or_path, "merged_adapters": [],
                "continue_from": None}
    parent = lineage_of(stage.init_from)
    parent_dir = str(Path(stage.init_from).resolve())
    if stage.chain == "continue":
        return {"base_model": parent["base_model"], "merged_adapters": parent["merged_adapters"],
                "continue_from": parent_dir}
    return {"base_model": parent["base_model"],
            "merged_adapters": [*parent["merged_adapters"], parent_dir], "continue_from": None}


def run_record(config: StageConfig) -> dict:
    """The resolved settings of a run as saved in ``run_config.json``: the settings by their
    upstream names plus SHA-256 digests of its train and eval files and of the parent stage's
    adapter, so a rebuilt dataset or a retrained stage 1 at the same path counts as a change."""
    record = config.record()
    train_file, eval_file = data_files(config)
    record["dataset_sha256"] = _digest(train_file)
    record["eval_sha256"] = _digest(eval_file)
    if config.stage.init_from:  # a retrained parent stage is a different starting point
        record["init_sha256"] = _digest(Path(config.stage.init_from)
                                        / "adapter_model.safetensors")
    return record


def config_changes(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """``(key, old, new)`` for the settings that change the trained result."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if key in RESULT_NEUTRAL or key in EVALUATION_KEYS:
            continue
        if key.endswith("_sha256") and key not in old:  # a run saved before digests existed
            continue
        if old.get(key) != new.get(key):
            changes.append((key, old.get(key), new.get(key)))
    return changes


def prepare_output_dir(config: StageConfig) -> tuple[str | None, bool]:
    """Decide what a rerun into an existing output directory does: resume when the recorded
    settings match, otherwise move the old run to ``<output_dir>.old-<time>`` with a notice.
    Records this run's settings; returns (checkpoint to resume or None, whether the old
    evaluation_before.json was made with the same evaluation settings)."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config.output_dir)
    record = run_record(config)
    old = _recorded_settings(out) if out.is_dir() else None
    checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    if old is not None:
        changes = config_changes(old, record)
        if changes:
            what = ", ".join(f"{k} {o!r} → {n!r}" for k, o, n in changes)
            _move_aside(out, f"its settings differ from this run's ({what})")
            old = checkpoint = None
    elif checkpoint is not None:
        _move_aside(out, f"it has checkpoints but no {RUN_CONFIG} to check its settings against")
        checkpoint = None
    same_evaluation = old is not None and all(old.get(k) == record.get(k)
                                              for k in EVALUATION_KEYS)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RUN_CONFIG, record)
    return checkpoint, same_evaluation


def _recorded_settings(out: Path) -> dict | None:
    if (out / RUN_CONFIG).is_file():
        return json.loads((out / RUN_CONFIG).read_text(encoding="utf-8"))
    if (out / "config.yaml").is_file():  # a run from before run_config.json: no digests
        return yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8")) or {}
    return None


def _move_aside(out: Path, why: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = out.with_name(f"{out.name}.old-{stamp}")
    n = 1
    while target.exists():
        target, n = out.with_name(f"{out.name}.old-{stamp}-{n}"), n + 1
    out.rename(target)
    # A warning, so that it shows in a notebook and on the command line alike.
    log.warning("%s: not resuming the run there — %s. Moved it to %s; starting afresh.",
                out, why, target)
    return target


def data_files(config: StageConfig) -> tuple[Path, Path | None]:
    """The train and eval files ``load_records`` reads for this config."""
    stage = config.stage
    path = Path(stage.dataset)
    if path.is_dir():
        default_eval = path / "eval.jsonl"
        eval_file = stage.eval_dataset or (default_eval if default_eval.is_file() else None)
        return path / "train.jsonl", Path(eval_file) if eval_file else None
    return path, Path(stage.eval_dataset) if stage.eval_dataset else None


def _digest(path: Path | None) -> str | None:
    return file_sha256(path) if path is not None and path.is_file() else None
