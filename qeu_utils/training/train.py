"""Serial LoRA fine-tuning: stage 1 (initialization data) → stage 2 (revised Dolly) → stage 3
(your data). ``train(resolve("stage1", profile, ...))`` runs one stage on TRL's
``SFTTrainer`` (``trainer``), evaluates before and after, and writes what the stage is:
adapter, ``lineage.json`` (what it stands on; ``runs.load_trained`` rebuilds it),
``config.yaml``, ``summary.json``, the loss curve and the evaluation.

Rerunning with the same output directory resumes from the last checkpoint only when the run's
settings are the same (``runs.prepare_output_dir``). Chaining: ``init_from`` a previous stage's
output, ``chain: continue`` (keep training its adapter) or ``chain: merge`` (merge it into the
base weights, then a fresh adapter).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from qeu_utils.core.atomic import atomic_write_json, atomic_write_text
from qeu_utils.core.plotting import pyplot, save_png
from qeu_utils.evaluation.evaluate import evaluate
from qeu_utils.evaluation.tables import compare, save_results, side_by_side
from qeu_utils.training.config import StageConfig
from qeu_utils.training.runs import prepare_output_dir
from qeu_utils.training.trainer import build_trainer


def train(config: StageConfig, callbacks: list | None = None,
          prepared: dict | None = None) -> dict:
    """Run one stage; return a summary (also written to the output directory as summary.json).
    ``prepared`` is ``build_trainer(config)``'s result when the caller already has it
    (notebooks look at the model and data before training)."""
    out = Path(config.output_dir)
    stage = prepared or build_trainer(config, callbacks)
    trainer, tokenizer, template = stage["trainer"], stage["tokenizer"], stage["template"]
    eval_records = stage["eval_records"]
    resume, same_evaluation = prepare_output_dir(config)
    before = None
    before_file = out / "evaluation_before.json"
    if config.stage.evaluate and eval_records:
        if resume and same_evaluation and before_file.is_file():
            before = json.loads(before_file.read_text(encoding="utf-8"))
        else:  # the model has not loaded the checkpoint yet: this is still the start point
            before = _evaluate(trainer.model, tokenizer, eval_records, template, config)
            atomic_write_json(before_file, before)

    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out))
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    start, settings = stage["start"], config.stage
    lineage = {"stage": settings.stage, "base_model": start["base_model"],
               "merged_adapters": start["merged_adapters"], "init_from": settings.init_from,
               "chain": settings.chain if settings.init_from else None,
               "continued_adapter": start["continue_from"], "template": template,
               "packing": stage["packing"], "precision": stage["precision"],
               "resumed_from": resume, "dataset": str(settings.dataset)}
    atomic_write_json(out / "lineage.json", lineage)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.record(), allow_unicode=True,
                                                         sort_keys=False))
    plot_loss(trainer.state.log_history, out / "loss_curve.png",
              title=f"stage {settings.stage}: {Path(str(settings.dataset)).name}")
    summary = {"output_dir": str(out), "global_step": result.global_step,
               "train_loss": result.training_loss, "resumed_from": resume, "lineage": lineage}
    if before is not None:
        after = _evaluate(trainer.model, tokenizer, eval_records, template, config)
        summary["evaluation"] = {"before": before, "after": after}
        _write_evaluation(out, before, after)
    if settings.merge:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(out / "merged", safe_serialization=True)
        tokenizer.save_pretrained(out / "merged")
    atomic_write_json(out / "summary.json", summary)
    return summary


def _evaluate(model, tokenizer, records, template, config: StageConfig) -> dict:
    return evaluate(model, tokenizer, records, template=template,
                    max_new_tokens=config.stage.probe_max_new_tokens,
                    probe_limit=config.stage.eval_limit)


def _write_evaluation(out: Path, before: dict, after: dict) -> None:
    save_results({"before": before, "after": after}, out / "evaluation.json")
    atomic_write_text(out / "evaluation.md",
                      compare(before, after) + "\n\n" + side_by_side(before, after) + "\n")


def plot_loss(log_history: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    steps = [e["step"] for e in log_history if "loss" in e]
    losses = [e["loss"] for e in log_history if "loss" in e]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(steps, losses, marker="o", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
