"""The run phase: train and measure every (condition, seed) cell into
``DIR/runs/<cell>/raw.json``, resuming what an interruption left. Runs on the GPU machine,
which has none of the text tools: nothing here (or below) imports them."""

from __future__ import annotations

import json
import logging
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_json
from qeu_utils.core.records import read_jsonl
from qeu_utils.evaluation.heldout import encode_for_loss
from qeu_utils.experiment.layout import cell_name
from qeu_utils.experiment.measure import measure
from qeu_utils.experiment.settings import _RUN_ONLY
from qeu_utils.model.models import load_model, resolve_model
from qeu_utils.model.prompting import resolve_template
from qeu_utils.training.config import resolve
from qeu_utils.training.profiles import load_profile
from qeu_utils.training.runs import load_trained

log = logging.getLogger(__name__)


def run(out_dir: str | Path, settings: dict | None = None, *,
        command: str | None = None) -> list[str]:
    """Train and measure every (condition, seed) not finished yet, the base model first.
    ``settings`` default to the prepared ones; run-only settings (precision, batch sizes,
    which seeds and conditions) may differ. Returns the cells run now."""
    out = Path(out_dir)
    manifest_path = out / "data" / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out}: no data/manifest.json — run the prepare phase first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    settings = {**manifest["settings"], **({k: settings[k] for k in _RUN_ONLY if k in settings}
                                           if settings else {})}
    cells = [("base", None)] + [(c, s) for s in settings["seeds"] for c in settings["conditions"]]
    done_now = []
    for k, (condition, seed) in enumerate(cells, 1):
        name = cell_name(condition, seed)
        cell = out / "runs" / name
        if (cell / "raw.json").is_file():
            log.info(f"[{k}/{len(cells)}] {name}: finished before, skipped")
            continue
        log.info(f"[{k}/{len(cells)}] {name}: start")
        _run_cell(out, cell, condition, seed, settings, command)
        done_now.append(name)
        log.info(f"[{k}/{len(cells)}] {name}: done")
    return done_now


def _timed(cell: Path, key: str, work) -> float:
    """Run ``work`` once per cell and remember its wall time in ``timing.json``: a resumed
    cell keeps the time of the stages finished before it was interrupted."""
    path = cell / "timing.json"
    timing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if key in timing:
        return timing[key]
    start = time.perf_counter()
    work()
    timing[key] = round(time.perf_counter() - start, 1)
    cell.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, timing)
    return timing[key]


def _train_config(settings: dict, seed: int, **stage):
    """A cell's stage: the stage-1 recipe with the profile's training settings, then the
    experiment's own (model, precision, batch, budget), by the settings' upstream names."""

    return resolve(
        "stage1", settings["profile"], model_name_or_path=settings["model"],
        per_device_train_batch_size=settings["batch_size"], precision=settings["precision"],
        evaluate=False, save_steps=settings["save_steps"],
        logging_steps=settings["logging_steps"], seed=seed, **stage)


def _train_once(config: dict) -> None:
    """Train unless the stage finished before (``summary.json``); an interrupted stage
    resumes from its last checkpoint (``qeu_utils.training.train.train``)."""
    from qeu_utils.training.train import train

    if (Path(config.output_dir) / "summary.json").is_file():
        return
    train(config)


def _run_cell(out: Path, cell: Path, condition: str, seed: int | None, settings: dict,
              command: str | None) -> None:
    data = out / "data"
    cell.mkdir(parents=True, exist_ok=True)
    stage1_data = {"B": data / "init", "C": data / "init_broken"}.get(condition)
    if stage1_data is not None:
        _timed(cell, "stage1_s", lambda: _train_once(_train_config(
            settings, seed, stage=1, dataset=str(stage1_data), output_dir=str(cell / "stage1"),
            num_train_epochs=settings["stage1_epochs"], max_steps=settings["stage1_max_steps"],
            learning_rate=settings["stage1_learning_rate"])))
    if condition != "base":
        steps = settings["stage2_steps"]
        if condition == "D":
            steps += extra_stage2_steps(out, settings)
        _timed(cell, "stage2_s", lambda: _train_once(_train_config(
            settings, seed, stage=2, dataset=str(data / "dolly" / "part-1-of-4.jsonl"),
            output_dir=str(cell / "stage2"), num_train_epochs=1, max_steps=steps,
            learning_rate=settings["stage2_learning_rate"],
            init_from=str(cell / "stage1") if stage1_data is not None else None,
            chain="merge")))
    start = time.perf_counter()
    model, tokenizer = _load(cell, condition, settings)
    raw = measure(model, tokenizer, data, settings, label=cell.name)
    timing = json.loads((cell / "timing.json").read_text()) if (cell / "timing.json").is_file() \
        else {}
    timing["measure_s"] = round(time.perf_counter() - start, 1)
    timing["total_s"] = round(sum(timing.values()), 1)
    raw.update({"cell": cell.name, "condition": condition, "seed": seed, "timing": timing,
                "command": command, "environment": environment(),
                "precision": settings["precision"],
                "training": {stage: _training_log(cell / stage)
                             for stage in ("stage1", "stage2") if (cell / stage).is_dir()}})
    atomic_write_json(cell / "raw.json", raw)


def _load(cell: Path, condition: str, settings: dict):
    dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(settings["precision"])
    if condition == "base":
        return load_model(settings["model"], dtype=dtype)
    return load_trained(cell / "stage2", dtype=dtype)


def _training_log(stage_dir: Path) -> dict:
    path = stage_dir / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    return {"global_step": state.get("global_step"),
            "loss": [[e["step"], e["loss"]] for e in state.get("log_history", []) if "loss" in e]}


def extra_stage2_steps(out: Path, settings: dict) -> int:
    """D's extra stage-2 steps: B's stage-1 tokens (epochs × every token of the init train
    split, prompt included) divided by the tokens of one stage-2 step."""
    tokenizer = _tokenizer(settings["model"])
    template = resolve_template(tokenizer)

    def tokens(records):
        return sum(len(encode_for_loss(r, tokenizer, template)[0]) for r in records)

    init = read_jsonl(out / "data" / "init" / "train.jsonl")
    dolly = read_jsonl(out / "data" / "dolly" / "part-1-of-4.jsonl")
    stage1 = tokens(init) * settings["stage1_epochs"]
    accumulation = load_profile(settings["profile"]).training["gradient_accumulation_steps"]
    per_step = tokens(dolly) / len(dolly) * settings["batch_size"] * accumulation
    return max(1, round(stage1 / per_step))


def _tokenizer(model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(model))


def environment() -> dict:
    """Versions of the libraries that shape a result, and the device it ran on."""
    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"versions": versions, "device": device, "python": sys.version.split()[0]}
