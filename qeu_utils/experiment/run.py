"""The run phase: train and measure every cell — the base model once, then each (trained
condition, seed) — into its own folder ``DIR/runs/<cell>/``, resuming what an interruption
left (a finished cell has ``raw.json.gz``, written last; an interrupted stage resumes from its
checkpoint). Each trained cell is measured right after stage 1; with ``durability`` stage 2
follows and is measured again. Runs on the GPU machine, which has none of the text tools:
nothing here (or below) imports them."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_json
from qeu_utils.core.records import read_jsonl
from qeu_utils.experiment.layout import (
    ITEMS,
    RAW,
    STAGE1_DATA,
    _write_lines,
    cell_name,
    write_json_gz,
)
from qeu_utils.experiment.measure import measure
from qeu_utils.experiment.questions import RECOGNITION_KINDS
from qeu_utils.experiment.settings import _RUN_ONLY, TRAINED
from qeu_utils.model.models import load_model
from qeu_utils.training.config import resolve
from qeu_utils.training.runs import load_trained

log = logging.getLogger(__name__)

# Seconds on the project's 2-core CPU, fp32. Measuring (Gemma 3 270M after 30 stage-1 steps,
# one thread, the other core busy): per recognition pair (a probe's prompt and two
# candidates), per rule pair (a sentence and two whole translations), per generated answer
# (mostly the prompt's prefill: a trained model ends its answers early, the base model's take
# about 20% longer), and the fixed part (loading, losses, hidden states, the lens). Stage 1:
# SmolLM2-135M's 25 min for the recipe's 340 steps on 2 cores (issue 20); Gemma 3 270M's
# 1,421 s on 2 idle cores (B-s0 of results/curriculum-gemma3-270m-cpu), where measuring the
# base cell took 442 s against these figures' 534 s. Other profiles: the training estimator.
MEASURE_S = {"pair": 0.235, "rule_pair": 0.52, "answer": 0.55, "fixed": 80.0}
STAGE1_S_PER_STEP = {("cpu", "smollm2-135m-instruct"): 4.4, ("cpu", "gemma3-270m"): 4.18}


def run(out_dir: str | Path, settings: dict | None = None, *,
        command: str | None = None) -> list[str]:
    """Train and measure every cell not finished yet, the base model first. ``settings``
    default to the prepared ones; run-only settings (precision, batch sizes, which seeds) may
    differ. Prints a cost estimate first. Returns the cells run now."""
    out = Path(out_dir)
    manifest_path = out / "data" / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out}: no data/manifest.json — run the prepare phase first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    settings = {**manifest["settings"], **({k: settings[k] for k in _RUN_ONLY if k in settings}
                                           if settings else {})}
    cells = [("base", None)] + [(c, s) for s in settings["seeds"] for c in TRAINED]
    todo = [c for c in cells if not (out / "runs" / cell_name(*c) / RAW).is_file()]
    estimate = cost_estimate(settings, manifest, todo)
    log.info(estimate["text"])
    print(estimate["text"], flush=True)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if todo:
        atomic_write_json(out / "runs" / f"estimate-{time.strftime('%Y%m%dT%H%M%S')}.json",
                          {k: v for k, v in estimate.items() if k != "text"})
    done_now, started = [], time.perf_counter()
    minutes = {True: [], False: []}  # per cell run now: trained or not
    for k, (condition, seed) in enumerate(cells, 1):
        name = cell_name(condition, seed)
        cell = out / "runs" / name
        if (cell / RAW).is_file():
            log.info(f"[{k}/{len(cells)}] {name}: finished before, skipped")
            continue
        log.info(f"[{k}/{len(cells)}] {name}: start")
        _run_cell(out, cell, condition, seed, settings, command)
        done_now.append(name)
        spent = (time.perf_counter() - started) / 60
        minutes[condition != "base"].append(spent - sum(map(sum, minutes.values())))
        left = len(todo) - len(done_now)
        # Every cell left is a trained one: the base cell (no stage 1) would set too fast a pace.
        pace = minutes[True] or minutes[False]
        log.info(f"[{k}/{len(cells)}] {name}: done; {spent:.1f} min so far, {left} cell(s) "
                 f"left ≈ {left * sum(pace) / len(pace):.0f} min at this pace")
    return done_now


def cost_estimate(settings: dict, manifest: dict, todo: list) -> dict:
    """Minutes for the cells still to run: stage 1 (the recipe's steps × seconds per step on
    the profile's device, measured on the project's CPU; none known elsewhere) and measuring
    (teacher-forced pairs, generated answers, the fixed part)."""
    records = manifest["init"]["train"]
    from qeu_utils.training.profiles import load_profile

    accumulation = load_profile(settings["profile"]).training["gradient_accumulation_steps"]
    steps = settings["stage1_max_steps"] if settings["stage1_max_steps"] > 0 else math.ceil(
        math.ceil(records / (settings["batch_size"] * accumulation)) * settings["stage1_epochs"])
    pairs = manifest.get("probes_margin", sum(n for k, n in manifest["probes"].items()
                                              if k in RECOGNITION_KINDS))
    measure_s = (MEASURE_S["pair"] * pairs + MEASURE_S["rule_pair"] * 2
                 * manifest["items"]["sentences"] + MEASURE_S["answer"]
                 * manifest["probes_generated"] + MEASURE_S["fixed"])
    per_step = (STAGE1_S_PER_STEP.get((settings["profile"], settings["model"]))
                or _estimated_step_s(settings))
    trained = sum(c != "base" for c, _ in todo)
    stage1_min = None if per_step is None else trained * steps * per_step / 60
    measure_min = len(todo) * measure_s / 60
    total = None if stage1_min is None else stage1_min + measure_min
    text = (f"cost estimate: {len(todo)} cell(s) to run ({trained} trained, {steps} stage-1 "
            f"steps each): stage 1 ≈ "
            + ("unknown on this profile" if stage1_min is None else f"{stage1_min:.0f} min")
            + f", measuring ≈ {measure_s / 60:.1f} min per cell ({measure_min:.0f} min)"
            + ("" if total is None else f", total ≈ {total / 60:.1f} h")
            + (" (stage 2 for durability not included)" if settings["durability"] else ""))
    return {"cells": len(todo), "trained_cells": trained, "stage1_steps": steps,
            "stage1_minutes": stage1_min, "measure_minutes_per_cell": measure_s / 60,
            "total_minutes": total, "text": text}


def _estimated_step_s(settings: dict) -> float | None:
    """Seconds per stage-1 step from the training estimator, for the profile's own model."""
    from qeu_utils.training.estimate import estimate_profile

    try:
        found = estimate_profile(settings["profile"])
    except (ValueError, KeyError):
        return None
    if found["model"] != settings["model"] or not found.get("stage1_steps"):
        return None
    return found["stage1_minutes"] * 60 / found["stage1_steps"]


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


def _train_once(config) -> None:
    """Train unless the stage finished before (``summary.json``); an interrupted stage
    resumes from its last checkpoint (``qeu_utils.training.train.train``)."""
    from qeu_utils.training.train import train

    if (Path(config.output_dir) / "summary.json").is_file():
        return
    train(config)


def _dtype(settings: dict) -> str | None:
    return {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(settings["precision"])


def _merged(loaded):
    """A trained stage with its adapter merged into the weights: the same model, and
    measuring runs no LoRA matrices."""
    model, tokenizer = loaded
    return (model.merge_and_unload() if hasattr(model, "merge_and_unload") else model), tokenizer


def _measure(cell: Path, key: str, load, data: Path, settings: dict, **what):
    start = time.perf_counter()
    model, tokenizer = load()
    raw, items = measure(model, tokenizer, data, settings, label=f"{cell.name} {key}", **what)
    raw["measure_s"] = round(time.perf_counter() - start, 1)
    return raw, items, tokenizer


def _run_cell(out: Path, cell: Path, condition: str, seed: int | None, settings: dict,
              command: str | None) -> None:
    data = out / "data"
    cell.mkdir(parents=True, exist_ok=True)
    if condition == "base":
        raw, items, _ = _measure(cell, "base", lambda: load_model(
            settings["model"], dtype=_dtype(settings)), data, settings)
    else:
        stage1_data = data / STAGE1_DATA[condition]
        _timed(cell, "stage1_s", lambda: _train_once(_train_config(
            settings, seed, stage=1, dataset=str(stage1_data), output_dir=str(cell / "stage1"),
            num_train_epochs=settings["stage1_epochs"], max_steps=settings["stage1_max_steps"],
            learning_rate=settings["stage1_learning_rate"])))
        raw, items, tokenizer = _measure(cell, "stage 1", lambda: _merged(load_trained(
            cell / "stage1", dtype=_dtype(settings))), data, settings)
        raw["stage1_tokens"] = _tokens(read_jsonl(stage1_data / "train.jsonl"), tokenizer)
        if settings["durability"]:
            _timed(cell, "stage2_s", lambda: _train_once(_train_config(
                settings, seed, stage=2, dataset=str(data / "dolly" / "part-1-of-4.jsonl"),
                output_dir=str(cell / "stage2"), num_train_epochs=1,
                max_steps=settings["stage2_steps"],
                learning_rate=settings["stage2_learning_rate"], init_from=str(cell / "stage1"),
                chain="merge")))
            after, after_items, _ = _measure(cell, "stage 2", lambda: _merged(load_trained(
                cell / "stage2", dtype=_dtype(settings))), data, settings, generate=False,
                dolly=True)
            raw["after_stage2"] = after
            _write_lines(cell / "items_stage2.jsonl.gz", after_items)
    timing = json.loads((cell / "timing.json").read_text()) if (cell / "timing.json").is_file() \
        else {}
    timing["measure_s"] = raw["measure_s"]
    if "after_stage2" in raw:
        timing["measure_stage2_s"] = raw["after_stage2"]["measure_s"]
    timing["total_s"] = round(sum(v for k, v in timing.items() if k != "total_s"), 1)
    raw.update({"cell": cell.name, "condition": condition, "seed": seed, "timing": timing,
                "command": command, "environment": environment(),
                "precision": settings["precision"],
                "training": {stage: _training_log(cell / stage)
                             for stage in ("stage1", "stage2") if (cell / stage).is_dir()}})
    _write_lines(cell / ITEMS, items)
    write_json_gz(cell / RAW, raw)  # last: its presence marks the cell finished


def _tokens(records: list[dict], tokenizer) -> dict:
    """Tokens of one epoch of stage-1 records as training sees them, and those in the answers
    (which carry the loss)."""
    from qeu_utils.evaluation.heldout import encode_for_loss
    from qeu_utils.model.prompting import resolve_template

    template = resolve_template(tokenizer)
    encoded = [encode_for_loss(r, tokenizer, template) for r in records]
    return {"records": len(records), "tokens": sum(len(ids) for ids, _ in encoded),
            "completion_tokens": sum(len(ids) - n for ids, n in encoded)}


def _training_log(stage_dir: Path) -> dict:
    path = stage_dir / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    history = state.get("log_history", [])
    return {"global_step": state.get("global_step"),
            "loss": [[e["step"], e["loss"]] for e in history if "loss" in e],
            "train_loss": next((e["train_loss"] for e in history if "train_loss" in e), None)}


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
