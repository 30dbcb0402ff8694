"""A stage's ``SFTTrainer``, built from its ``StageConfig``:

- loss on the response only: records become TRL prompt-completion pairs (``prompting``);
- the tokenizer's chat template for chat models, a Japanese Alpaca template otherwise;
- packing (padding-free) only where it is correct — FlashAttention on CUDA, where packed
  sequences cannot attend to each other; otherwise length-grouped batches padded per batch;
- bf16/fp16/fp32 from the hardware and the model (``models.device_precision``, the one
  rule), optional activation checkpointing, optional QLoRA on CUDA; a memory/time estimate
  is printed first;
- checkpoints every ``save_steps`` and at each epoch end;
- under ``QEU_PROGRESS=plain`` one printed line per logging step instead of a live bar.
"""

from __future__ import annotations

import dataclasses
import os
import statistics

from transformers import TrainerCallback

from qeu_utils.model.loss import fast_loss_ok, token_nll
from qeu_utils.model.models import device_precision, dtype_of, model_type_of
from qeu_utils.model.prompting import prompt_and_completion, resolve_template
from qeu_utils.training import estimate as est
from qeu_utils.training.config import StageConfig
from qeu_utils.training.profiles import device_info
from qeu_utils.training.runs import current_device, load_records, load_stack, starting_point


def precision_for(config: StageConfig, device: str, model_type: str | None = None) -> str:
    """``precision: auto`` → what ``models.device_precision`` picks for ``device`` and the base
    model's type (default: read from the stage's model)."""

    if config.stage.precision != "auto":
        return config.stage.precision
    if model_type is None:
        model_type = model_type_of(starting_point(config)["base_model"], download=True)
    return device_precision(device, model_type)


def training_arguments(config: StageConfig, *, device: str, precision: str, packing: bool):
    """The stage's ``SFTConfig`` with what the machine decides filled in: precision, CPU or
    GPU, packing and the batch order that goes with it."""
    if config.sft.packing and not packing:
        raise ValueError("packing: true needs FlashAttention on a CUDA GPU (otherwise packed "
                         "sequences attend to each other); set packing: false")
    return dataclasses.replace(
        config.sft, bf16=precision == "bf16", fp16=precision == "fp16",
        use_cpu=device == "cpu", packing=packing,
        train_sampling_strategy="random" if packing else "group_by_length")


def build_trainer(config: StageConfig, callbacks: list | None = None) -> dict:
    """Load what a stage stands on and set up its ``SFTTrainer``; returns the pieces ``train``
    needs (the trainer, tokenizer, template, eval records, lineage facts)."""
    from datasets import Dataset

    device = current_device()
    precision = precision_for(config, device)
    quantization = None
    if config.model.load_in_4bit:
        if not device.startswith("cuda"):
            raise ValueError("load_in_4bit: true needs a CUDA GPU (bitsandbytes 4-bit); set it "
                             "to false")
        quantization = config.quantization_config(precision)
    start = starting_point(config)
    dtype = dtype_of(precision)
    model, tokenizer = load_stack(start["base_model"], start["merged_adapters"],
                                  start["continue_from"], device=device, dtype=dtype,
                                  trainable=True, quantization=quantization)
    template = resolve_template(tokenizer, config.stage.template)
    train_records, eval_records = load_records(config.stage.dataset, config.stage.eval_dataset)
    eval_records = eval_records[:config.stage.eval_size]
    train_data = Dataset.from_list([prompt_and_completion(r, template) for r in train_records])

    attention = getattr(model.config, "_attn_implementation", "") or ""
    packing = bool(config.sft.packing) and device.startswith("cuda") \
        and attention.startswith("flash_attention")
    args = training_arguments(config, device=device, precision=precision, packing=packing)
    peft_config = None if start["continue_from"] else config.peft_config()
    from trl import SFTTrainer

    # Packed batches carry no padding to skip, so the fast loss path has nothing to gain.
    trainer_class = SFTTrainer if packing else completion_only_trainer()
    trainer = trainer_class(
        model=model, args=args, train_dataset=train_data, processing_class=tokenizer,
        peft_config=peft_config, callbacks=[SaveAtEpochEnd(), *(callbacks or [])],
    )
    plain_progress(trainer)
    print(estimate_line(trainer, config, precision, device), flush=True)
    return {"trainer": trainer, "tokenizer": tokenizer, "template": template,
            "eval_records": eval_records, "start": start, "packing": packing,
            "precision": precision}


def estimate_line(trainer, config: StageConfig, precision: str, device: str) -> str:
    """The estimator's memory and time for this stage, from the tokenized training data."""

    data = trainer.train_dataset
    lengths = [len(ids) for ids in data["input_ids"]]
    if not lengths:
        return "estimate: no training records"
    if fast_loss_ok(trainer.model):
        loss_fraction = max(loss_tokens(data) / sum(lengths), 1e-3)
    else:
        loss_fraction = 1.0  # the model's own forward computes logits for every position
    where = "cpu" if device == "cpu" else (device_info().get("name") or "") if device.startswith(
        "cuda") else device
    sft, lora = config.sft, config.model
    model_type = getattr(getattr(trainer.model, "config", None), "model_type", None)
    common = dict(batch_size=sft.per_device_train_batch_size,
                  grad_accum=sft.gradient_accumulation_steps, precision=precision,
                  lora_r=lora.lora_r, lora_targets=lora.lora_target_modules,
                  gradient_checkpointing=bool(sft.activation_checkpointing),
                  qlora=bool(lora.load_in_4bit), loss_fraction=loss_fraction,
                  model_type=model_type,
                  n_params=sum(p.numel() for p in trainer.model.parameters()
                               if not p.requires_grad))
    try:
        shape = est.shape_of(trainer.model)
        longest = min(max(lengths), sft.max_length)
        typical = min(round(statistics.fmean(lengths) * est.PAD_FACTOR), sft.max_length)
        peak = est.estimate(shape, seq_len=longest, device=where, **common)
        step = est.estimate(shape, seq_len=typical, device=where, **common)
    except (ValueError, AttributeError) as err:  # an unknown GPU or an unusual architecture
        return f"estimate: not available ({err})"
    timing = est.stage_minutes(step, records=len(lengths), epochs=sft.num_train_epochs,
                               max_steps=sft.max_steps)
    step["peak_memory_gib"], step["memory_gib"] = peak["peak_memory_gib"], peak["memory_gib"]
    return est.describe(step, timing)


def loss_tokens(data) -> int:
    """Tokens that carry the loss in TRL's tokenized data: its ``labels`` other than -100 (TRL
    folds the completion mask into them), else the ``completion_mask``, else every token."""
    if "labels" in data.column_names:
        return sum(x != -100 for row in data["labels"] for x in row)
    if "completion_mask" in data.column_names:
        return sum(map(sum, data["completion_mask"]))
    return sum(len(ids) for ids in data["input_ids"])


def completion_only_trainer():
    """``SFTTrainer`` whose loss applies the LM head only where a label is set
    (``qeu_utils.model.loss``): the same token-level cross-entropy as the model's own loss, in
    less time and memory, for the architectures where that holds; any other model uses its own
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


class SaveAtEpochEnd(TrainerCallback):
    """A checkpoint at each epoch end as well as every ``save_steps`` (Trainer's save
    strategies are one or the other)."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_save = True
        return control
