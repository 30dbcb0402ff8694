"""Serial LoRA fine-tuning: stage 1 (initialization data) → stage 2 (revised Dolly) → stage 3
(your data), driven by a config (the packaged ``stage1``/``stage2``/``stage3`` or any YAML
file) and built on TRL's ``SFTTrainer``.

- Loss on the response only: records become TRL prompt-completion pairs (``prompting``).
- The tokenizer's chat template for chat models, a Japanese Alpaca template otherwise.
- Packing (padding-free) only where it is correct — FlashAttention on CUDA, where packed
  sequences cannot attend to each other; otherwise length-grouped batches padded per batch.
- bf16/fp16 from the hardware (``models.default_dtype``, the one precision rule), optional
  gradient checkpointing, optional QLoRA on CUDA; a memory/time estimate is printed first.
- Checkpoints every ``save_steps`` and at each epoch end. Rerunning with the same output
  directory resumes from the last checkpoint only when the run's settings are the same
  (``run_config.json``); after a change the old run is moved aside with a notice naming what
  changed, so a new learning rate never continues an old run.
- Chaining: ``init_from`` a previous stage's output, ``chain: continue`` (keep training its
  adapter) or ``chain: merge`` (merge it into the base weights, then a fresh adapter).
  ``lineage.json`` records what a run stands on; ``load_trained`` rebuilds it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from transformers import TrainerCallback

from qeu_utils.core.atomic import atomic_write_json, atomic_write_text, file_sha256
from qeu_utils.model.loss import fast_loss_ok, token_nll

DEFAULTS = {
    "stage": 1,
    "model": "smollm2-135m-instruct",
    "dataset": "data/build/init",
    "eval_dataset": None,  # default: eval.jsonl next to train.jsonl when the dataset is a dir
    "eval_size": None,  # evaluate on the first N eval records only (None: all)
    "eval_limit": None,  # probe (generate answers for) at most this many of them per task
    "output_dir": "runs/stage1",
    "init_from": None,
    "chain": "continue",
    "template": "auto",
    "epochs": 10,
    "max_steps": -1,
    "learning_rate": 2.0e-4,
    "batch_size": 8,
    "grad_accum": 1,
    "max_length": 1024,
    "warmup_steps": 0.03,
    "lr_scheduler": "cosine",
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
    "packing": "auto",
    "gradient_checkpointing": False,
    "qlora": False,
    "precision": "auto",
    "save_steps": 50,
    "save_total_limit": 3,
    "logging_steps": 10,
    "seed": 42,
    "merge": False,
    "evaluate": True,
    "probe_max_new_tokens": 48,
}
CHAIN_MODES = ("continue", "merge")


def load_config(path: str | os.PathLike | None, **overrides) -> dict:
    """Defaults, then the config (a packaged name such as ``"stage1"`` or a YAML path), then
    the non-None ``overrides``; unknown keys are errors."""
    config = json.loads(json.dumps(DEFAULTS))
    if path is not None:
        from qeu_utils.core.resources import config_path

        path = config_path(path)  # "stage1" → the packaged config; a path → that file
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        unknown = sorted(set(loaded) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(DEFAULTS)}")
        for key, value in loaded.items():
            if key == "lora":
                config["lora"].update(value or {})
            else:
                config[key] = value
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in DEFAULTS:
            raise ValueError(f"unknown setting {key!r}; known: {sorted(DEFAULTS)}")
        if key == "lora":
            config["lora"].update(value)
        else:
            config[key] = value
    if config["chain"] not in CHAIN_MODES:
        raise ValueError(f"chain must be continue or merge, got {config['chain']!r}")
    return config


def load_records(dataset: str | os.PathLike, eval_dataset=None) -> tuple[list[dict], list[dict]]:
    """Train and eval records from a build directory (train.jsonl, eval.jsonl) or JSONL files."""
    from qeu_utils.core.records import read_jsonl

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


def _device() -> str:
    from qeu_utils.model.models import default_device

    device = default_device()
    # Under `accelerate launch`/torchrun each process owns the GPU of its local rank.
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def _precision(config: dict, device: str) -> str:
    """``precision: auto`` → what ``models.default_dtype`` picks for ``device``."""
    from qeu_utils.model.models import default_dtype, precision_name

    if config["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {config['precision']!r}")
    if config["precision"] != "auto":
        return config["precision"]
    return precision_name(default_dtype(device))


def load_stack(base: str, merged_adapters: list[str], adapter: str | None, *, device: str,
               dtype=None, trainable: bool = False, quantization=None):
    """The base model with earlier stages merged in, then ``adapter`` on top (or none)."""
    from peft import PeftModel

    from qeu_utils.model.models import load_model

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
                                  str(output_dir), device=device or _device(), dtype=dtype)
    model.eval()
    return model, tokenizer


def _starting_point(config: dict) -> dict:
    """What this stage stands on: the base model, adapters merged into it, the adapter to
    keep training (continue) or none (fresh LoRA)."""
    if not config["init_from"]:
        return {"base_model": config["model"], "merged_adapters": [], "continue_from": None}
    parent = lineage_of(config["init_from"])
    parent_dir = str(Path(config["init_from"]).resolve())
    if config["chain"] == "continue":
        return {"base_model": parent["base_model"], "merged_adapters": parent["merged_adapters"],
                "continue_from": parent_dir}
    return {"base_model": parent["base_model"],
            "merged_adapters": [*parent["merged_adapters"], parent_dir], "continue_from": None}


def build_trainer(config: dict, callbacks: list | None = None) -> dict:
    """Load what a stage stands on and set up its ``SFTTrainer``; returns the pieces ``train``
    needs (the trainer, tokenizer, template, eval records, lineage facts)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from qeu_utils.model.prompting import prompt_and_completion, resolve_template

    device = _device()
    precision = _precision(config, device)
    quantization = None
    if config["qlora"]:
        if not device.startswith("cuda"):
            raise ValueError("qlora: true needs a CUDA GPU (bitsandbytes 4-bit); set it to false")
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    start = _starting_point(config)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    model, tokenizer = load_stack(start["base_model"], start["merged_adapters"],
                                  start["continue_from"], device=device, dtype=dtype,
                                  trainable=True, quantization=quantization)
    template = resolve_template(tokenizer, config["template"])
    train_records, eval_records = load_records(config["dataset"], config["eval_dataset"])
    eval_records = eval_records[:config["eval_size"]]
    train_data = Dataset.from_list([prompt_and_completion(r, template) for r in train_records])

    attention = getattr(model.config, "_attn_implementation", "") or ""
    packing = config["packing"]
    if packing == "auto":
        packing = device.startswith("cuda") and attention.startswith("flash_attention")
    args = SFTConfig(
        output_dir=str(config["output_dir"]),
        num_train_epochs=config["epochs"],
        max_steps=config["max_steps"],
        learning_rate=config["learning_rate"],
        per_device_train_batch_size=config["batch_size"],
        gradient_accumulation_steps=config["grad_accum"],
        max_length=config["max_length"],
        warmup_steps=config["warmup_steps"],
        lr_scheduler_type=config["lr_scheduler"],
        packing=bool(packing),
        train_sampling_strategy="random" if packing else "group_by_length",
        activation_checkpointing=bool(config["gradient_checkpointing"]),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        save_strategy="steps",
        save_steps=config["save_steps"],
        save_total_limit=config["save_total_limit"],
        logging_steps=config["logging_steps"],
        seed=config["seed"],
        data_seed=config["seed"],
        report_to=[],
        completion_only_loss=True,
    )
    lora = config["lora"]
    peft_config = None if start["continue_from"] else LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"], task_type="CAUSAL_LM")
    trainer_class = SFTTrainer if packing else completion_only_trainer()
    trainer = trainer_class(
        model=model, args=args, train_dataset=train_data, processing_class=tokenizer,
        peft_config=peft_config, callbacks=[_SaveAtEpochEnd(), *(callbacks or [])],
    )
    plain_progress(trainer)
    print(estimate_line(trainer, config, precision, device), flush=True)
    return {"trainer": trainer, "tokenizer": tokenizer, "template": template,
            "eval_records": eval_records, "start": start, "packing": bool(packing),
            "precision": precision}


def estimate_line(trainer, config: dict, precision: str, device: str) -> str:
    """The estimator's memory and time for this stage, from the tokenized training data."""
    import statistics

    from qeu_utils.training import estimate as est
    from qeu_utils.training.profiles import device_info

    data = trainer.train_dataset
    lengths = [len(ids) for ids in data["input_ids"]]
    if not lengths:
        return "estimate: no training records"
    if "completion_mask" in data.column_names and fast_loss_ok(trainer.model):
        loss_fraction = max(sum(map(sum, data["completion_mask"])) / sum(lengths), 1e-3)
    else:
        loss_fraction = 1.0  # the model's own forward computes logits for every position
    where = "cpu" if device == "cpu" else (device_info().get("name") or "") if device.startswith(
        "cuda") else device
    common = dict(batch_size=config["batch_size"], grad_accum=config["grad_accum"],
                  precision=precision, lora_r=config["lora"]["r"],
                  lora_targets=config["lora"]["target_modules"],
                  gradient_checkpointing=bool(config["gradient_checkpointing"]),
                  qlora=bool(config["qlora"]), loss_fraction=loss_fraction,
                  n_params=sum(p.numel() for p in trainer.model.parameters()
                               if not p.requires_grad))
    try:
        shape = est.shape_of(trainer.model)
        longest = min(max(lengths), config["max_length"])
        typical = min(round(statistics.fmean(lengths) * est.PAD_FACTOR), config["max_length"])
        peak = est.estimate(shape, seq_len=longest, device=where, **common)
        step = est.estimate(shape, seq_len=typical, device=where, **common)
    except (ValueError, AttributeError) as err:  # an unknown GPU or an unusual architecture
        return f"estimate: not available ({err})"
    timing = est.stage_minutes(step, records=len(lengths), epochs=config["epochs"],
                               max_steps=config["max_steps"])
    step["peak_memory_gib"], step["memory_gib"] = peak["peak_memory_gib"], peak["memory_gib"]
    return est.describe(step, timing)


def train(config: dict, callbacks: list | None = None, prepared: dict | None = None) -> dict:
    """Run one stage; return a summary (also written to the output directory as summary.json).
    Rerunning with the same ``output_dir`` resumes from its last checkpoint when the settings
    are the same; otherwise the old run is moved aside (``_prepare_output_dir``). ``prepared`` is
    ``build_trainer(config)``'s result when the caller already has it (notebooks look at the
    model and data before training)."""
    out = Path(config["output_dir"])
    stage = prepared or build_trainer(config, callbacks)
    trainer, tokenizer, template = stage["trainer"], stage["tokenizer"], stage["template"]
    eval_records = stage["eval_records"]
    resume, same_evaluation = _prepare_output_dir(config)
    before = None
    before_file = out / "evaluation_before.json"
    if config["evaluate"] and eval_records:
        if resume and same_evaluation and before_file.is_file():
            before = json.loads(before_file.read_text(encoding="utf-8"))
        else:  # the model has not loaded the checkpoint yet: this is still the start point
            before = _evaluate(trainer.model, tokenizer, eval_records, template, config)
            atomic_write_json(before_file, before)

    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out))
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    start = stage["start"]
    lineage = {"stage": config["stage"], "base_model": start["base_model"],
               "merged_adapters": start["merged_adapters"], "init_from": config["init_from"],
               "chain": config["chain"] if config["init_from"] else None,
               "continued_adapter": start["continue_from"], "template": template,
               "packing": stage["packing"], "precision": stage["precision"],
               "resumed_from": resume, "dataset": str(config["dataset"])}
    atomic_write_json(out / "lineage.json", lineage)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, allow_unicode=True,
                                                         sort_keys=False))
    plot_loss(trainer.state.log_history, out / "loss_curve.png",
              title=f"stage {config['stage']}: {Path(str(config['dataset'])).name}")
    summary = {"output_dir": str(out), "global_step": result.global_step,
               "train_loss": result.training_loss, "resumed_from": resume, "lineage": lineage}
    if before is not None:
        after = _evaluate(trainer.model, tokenizer, eval_records, template, config)
        summary["evaluation"] = {"before": before, "after": after}
        _write_evaluation(out, before, after)
    if config["merge"]:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(out / "merged", safe_serialization=True)
        tokenizer.save_pretrained(out / "merged")
    atomic_write_json(out / "summary.json", summary)
    return summary


# Settings that do not change the trained weights: a run that differs only in these resumes.
RESULT_NEUTRAL = ("output_dir", "logging_steps", "save_steps", "save_total_limit", "evaluate",
                  "eval_dataset", "eval_size", "eval_limit", "probe_max_new_tokens", "merge")
# Settings (and data) the saved evaluation_before.json depends on besides the training ones.
EVALUATION_KEYS = ("eval_dataset", "eval_size", "eval_limit", "probe_max_new_tokens",
                   "eval_sha256")
RUN_CONFIG = "run_config.json"


def run_record(config: dict) -> dict:
    """The resolved settings of a run as saved in ``run_config.json``: the config with the
    LoRA settings flattened (``lora.r``) plus SHA-256 digests of its train and eval files and
    of the parent stage's adapter, so a rebuilt dataset or a retrained stage 1 at the same
    path counts as a change."""
    record = {k: v for k, v in json.loads(json.dumps(config)).items() if k != "lora"}
    record.update({f"lora.{k}": v for k, v in config["lora"].items()})
    train_file, eval_file = _data_files(config)
    record["dataset_sha256"] = _digest(train_file)
    record["eval_sha256"] = _digest(eval_file)
    if config["init_from"]:  # a retrained parent stage is a different starting point
        record["init_sha256"] = _digest(Path(config["init_from"]) / "adapter_model.safetensors")
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


def _prepare_output_dir(config: dict) -> tuple[str | None, bool]:
    """Decide what a rerun into an existing ``output_dir`` does: resume when the recorded
    settings match, otherwise move the old run to ``<output_dir>.old-<time>`` with a notice.
    Records this run's settings; returns (checkpoint to resume or None, whether the old
    evaluation_before.json was made with the same evaluation settings)."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(config["output_dir"])
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
        old = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8")) or {}
        lora = old.pop("lora", None) or {}
        old.update({f"lora.{k}": v for k, v in lora.items()})
        return old
    return None


def _move_aside(out: Path, why: str) -> Path:
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = out.with_name(f"{out.name}.old-{stamp}")
    n = 1
    while target.exists():
        target, n = out.with_name(f"{out.name}.old-{stamp}-{n}"), n + 1
    out.rename(target)
    print(f"{out}: not resuming the run there — {why}. Moved it to {target}; starting afresh.",
          flush=True)
    return target


def _data_files(config: dict) -> tuple[Path, Path | None]:
    """The train and eval files ``load_records`` reads for this config."""
    path = Path(config["dataset"])
    if path.is_dir():
        default_eval = path / "eval.jsonl"
        eval_file = config["eval_dataset"] or (default_eval if default_eval.is_file() else None)
        return path / "train.jsonl", Path(eval_file) if eval_file else None
    return path, Path(config["eval_dataset"]) if config["eval_dataset"] else None


def _digest(path: Path | None) -> str | None:
    return file_sha256(path) if path is not None and path.is_file() else None


def completion_only_trainer():
    """``SFTTrainer`` whose loss applies the LM head only where a label is set
    (``qeu_utils.model.loss``): the same token-level cross-entropy as the model's own loss, in less
    time and memory, for the architectures where that holds; any other model uses its own
    forward."""
    from trl import SFTTrainer

    class CompletionOnlySFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not fast_loss_ok(model):
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            nll, keep = token_nll(model, inputs["labels"], **{
                k: v for k, v in inputs.items()
                if k in ("input_ids", "attention_mask", "position_ids")})
            # Normalized by the tokens of the whole accumulated batch when Trainer gives them,
            # as the model's own loss is; then Trainer must not divide again.
            self.loss_is_scaled_for_ga = num_items_in_batch is not None
            denominator = num_items_in_batch if num_items_in_batch is not None else keep.sum()
            loss = nll.sum() / denominator
            return (loss, None) if return_outputs else loss

    return CompletionOnlySFTTrainer


class LogLines(TrainerCallback):
    """One plain line per logging step: ``step 10/20 | loss 2.3456 | lr 1.00e-04``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            line = f"step {state.global_step}/{state.max_steps} | loss {logs['loss']:.4f}"
            if "learning_rate" in logs:
                line += f" | lr {logs['learning_rate']:.2e}"
            print(line, flush=True)


def plain_progress(trainer, plain: bool | None = None):
    """With ``plain`` (default: ``QEU_PROGRESS=plain`` in the environment, which ``make
    notebooks`` and ``make demo`` set), swap Trainer's live progress bar and its dict
    printer for :class:`LogLines`, so a stored notebook shows no bar, widget or speed.
    Returns the trainer."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    if plain is None:
        plain = os.environ.get("QEU_PROGRESS") == "plain"
    if plain:
        for callback in (NotebookProgressCallback, ProgressCallback, PrinterCallback):
            trainer.remove_callback(callback)
        trainer.add_callback(LogLines())
    return trainer


class _SaveAtEpochEnd(TrainerCallback):
    """A checkpoint at each epoch end as well as every ``save_steps`` (Trainer's save
    strategies are one or the other)."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_save = True
        return control


def _evaluate(model, tokenizer, records, template, config) -> dict:
    from qeu_utils.evaluation.evaluate import evaluate

    return evaluate(model, tokenizer, records, template=template,
                    max_new_tokens=config["probe_max_new_tokens"],
                    probe_limit=config["eval_limit"])


def _write_evaluation(out: Path, before: dict, after: dict) -> None:
    from qeu_utils.evaluation.evaluate import compare, save_results, side_by_side

    save_results({"before": before, "after": after}, out / "evaluation.json")
    atomic_write_text(out / "evaluation.md",
                      compare(before, after) + "\n\n" + side_by_side(before, after) + "\n")


def plot_loss(log_history: list[dict], path: Path, title: str) -> None:
    from qeu_utils.core.plotting import pyplot, save_png

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
