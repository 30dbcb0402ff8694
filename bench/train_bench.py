"""Stage-1 training throughput: our setup against a naive baseline, same model and data, one
process.

- ours: ``qeu_utils.training.train`` (TRL SFTTrainer + LoRA, completion-only loss, length-grouped
  batches padded per batch; packing where FlashAttention makes it correct);
- baseline: transformers ``Trainer`` + the same LoRA, random batches padded to the longest,
  loss on every token.

Printed per setup: real (non-padding) tokens per second, loss-bearing tokens per second,
and the padding share of the timed batches and of a whole epoch (length grouping puts the
longest, most uneven records first); then the ratio ours / baseline of real tokens per
second. Last, our setup on ``--versus`` (default ``gemma3-270m``, the subject model) against
``--model`` on the same data: the ratio of real tokens per second and of records per second
(the two tokenizers cut the same records into different numbers of tokens).
Run: python bench/train_bench.py [--model smollm2-135m-instruct] [--steps 12] [--versus ""]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def count_tokens(trainer, steps: int) -> tuple[int, int, int, float]:
    """(real, padding, loss-bearing) tokens in the first ``steps`` batches the trainer sees,
    and the padding share over a whole epoch of batches."""
    real = pad = loss = 0
    epoch_real = epoch_pad = 0
    for k, batch in enumerate(trainer.get_train_dataloader()):
        mask = batch["attention_mask"]
        n_real, n_pad = int(mask.sum()), int(mask.numel() - mask.sum())
        epoch_real, epoch_pad = epoch_real + n_real, epoch_pad + n_pad
        if k < steps:
            real, pad = real + n_real, pad + n_pad
            loss += int((batch["labels"] != -100).sum())
    return real, pad, loss, epoch_pad / (epoch_real + epoch_pad)


def timed_train(trainer) -> float:
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def ours(model: str, data: Path, steps: int, batch: int, out: Path):
    from qeu_utils.training.config import resolve
    from qeu_utils.training.trainer import build_trainer

    config = resolve("stage1", model_name_or_path=model, dataset=str(data), output_dir=str(out),
                     max_steps=steps, per_device_train_batch_size=batch, save_steps=10_000,
                     logging_steps=steps, evaluate=False)
    stage = build_trainer(config)
    return stage["trainer"], stage["tokenizer"]


def baseline(model: str, data: Path, steps: int, batch: int, out: Path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from qeu_utils.core.records import read_jsonl
    from qeu_utils.model.models import load_model
    from qeu_utils.model.prompting import render, resolve_template

    lm, tokenizer = load_model(model, device="cpu")
    template = resolve_template(tokenizer)
    texts = ["".join(render(r, tokenizer, template)) for r in read_jsonl(data / "train.jsonl")]
    encoded = Dataset.from_dict({"text": texts}).map(
        lambda b: tokenizer(b["text"], add_special_tokens=False), batched=True,
        remove_columns=["text"])
    lm = get_peft_model(lm, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                       target_modules="all-linear", task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(out), max_steps=steps,
                             per_device_train_batch_size=batch, learning_rate=2e-4,
                             use_cpu=True, report_to=[], save_strategy="no",
                             logging_steps=steps, seed=42, data_seed=42)
    # mlm=False: labels are the input ids, every token (and its padding) carries loss.
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    return Trainer(model=lm, args=args, train_dataset=encoded, data_collator=collator), tokenizer


def measure(name: str, trainer, steps: int, batch: int) -> tuple[float, float]:
    """Train ``steps`` steps and print the line; returns (real tokens/s, records/s)."""
    real, pad, loss, epoch_padding = count_tokens(trainer, steps)
    seconds = timed_train(trainer)
    print(f"{name:8} {seconds:6.1f} s  real tokens/s {real / seconds:7.1f}  "
          f"loss-bearing tokens/s {loss / seconds:7.1f}  padding: timed batches "
          f"{pad / (real + pad):5.1%}, whole epoch {epoch_padding:5.1%}", flush=True)
    return real / seconds, steps * batch / seconds


def main() -> None:
    from qeu_utils.builders.mix import build_init, write_init

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--versus", default="gemma3-270m",
                        help="a second model for our setup, compared with --model ('' skips)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_records, held_out = build_init(size=300, seed=0)
        data = write_init(tmp / "init", train_records, held_out, seed=0, size=300)
        results = {}
        for name, setup in (("baseline", baseline), ("ours", ours)):
            trainer, tokenizer = setup(args.model, data, args.steps, args.batch_size,
                                       tmp / name)
            results[name] = measure(name, trainer, args.steps, args.batch_size)
        print(f"ratio ours / baseline (real tokens per second) = "
              f"{results['ours'][0] / results['baseline'][0]:.2f} (goal >= 1.5)")
        if args.versus:
            trainer, _ = ours(args.versus, data, args.steps, args.batch_size, tmp / "versus")
            versus = measure(args.versus, trainer, args.steps, args.batch_size)
            print(f"ratio {args.versus} / {args.model}, ours: real tokens per second "
                  f"{versus[0] / results['ours'][0]:.2f}, records per second "
                  f"{versus[1] / results['ours'][1]:.2f}")


if __name__ == "__main__":
    main()
