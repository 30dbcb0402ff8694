"""Tokens per record of each stage's data, by tokenizer: the figures behind the estimator's
``STAGES`` / ``GEMMA3_STAGES`` (``qeu_utils.training.estimate``).

Each record is rendered with the template the model trains with (SmolLM2's chat template,
the Japanese Alpaca template for base Gemma 3) and counted as training counts it: prompt with
special tokens, completion with its end token. Printed per model and data set: mean and
longest tokens per record, the share of tokens that carry the loss, tokens per character,
and the ratio of each model's mean to the first model's.
Run: python bench/stage_tokens.py [--models smollm2-135m-instruct gemma3-270m]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def data_sets() -> dict[str, list[dict]]:
    from qeu_utils.builders.dolly import build_dolly
    from qeu_utils.builders.mix import build_init
    from qeu_utils.core.records import read_jsonl
    from qeu_utils.core.resources import dolly_sample_path

    tmp = Path(tempfile.mkdtemp())
    train, _ = build_init()
    build_dolly(dolly_sample_path(), tmp / "dolly", parts=1, seed=0)
    return {"stage 1 (default init build, train split)": train,
            "stage 2 (revised Dolly sample)": read_jsonl(tmp / "dolly" / "part-1-of-1.jsonl")}


def count(records: list[dict], tokenizer, template: str) -> dict:
    from qeu_utils.model.prompting import render

    lengths, loss = [], 0
    for record in records:
        prompt, completion = render(record, tokenizer, template)
        n_prompt = len(tokenizer(prompt)["input_ids"])
        n_completion = len(tokenizer(completion, add_special_tokens=False)["input_ids"])
        lengths.append(n_prompt + n_completion)
        loss += n_completion
    chars = sum(len(r["instruction"]) + len(r["input"]) + len(r["output"]) for r in records)
    return {"records": len(records), "mean": statistics.mean(lengths), "max": max(lengths),
            "loss_fraction": loss / sum(lengths), "per_char": sum(lengths) / chars}


def main() -> None:
    from transformers import AutoTokenizer

    from qeu_utils.model.models import resolve_model
    from qeu_utils.model.prompting import resolve_template

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma3-270m"])
    args = parser.parse_args()
    sets = data_sets()
    first: dict[str, float] = {}
    for model in args.models:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
        template = resolve_template(tokenizer)
        for name, records in sets.items():
            c = count(records, tokenizer, template)
            first.setdefault(name, c["mean"])
            print(f"{model} ({template}) {name}: {c['records']} records, mean {c['mean']:.1f} "
                  f"tokens, longest {c['max']}, loss on {c['loss_fraction']:.0%}, "
                  f"{c['per_char']:.2f} tokens/char, mean ratio {c['mean'] / first[name]:.2f}")


if __name__ == "__main__":
    main()
