"""How long the Dolly revision takes on a Dolly-sized input (15,011 records), as a ratio to
plain fugashi tokenization of the same text in the same process.

The input is the project's sample (data/sources/dolly_sample_ja.jsonl) repeated with a
distinct number in each instruction, so deduplication keeps the copies and every step does
its full work. Run: python bench/dolly_bench.py [--num-proc N]
"""

import argparse
import json
import time

from datasets import Dataset

from qeu_utils.builders.dolly import SAMPLE, revise

DOLLY_SIZE = 15011


def corpus() -> Dataset:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    out = {f: [] for f in ("instruction", "input", "output", "category", "index")}
    for n in range(DOLLY_SIZE):
        row = rows[n % len(rows)]
        out["instruction"].append(f"{row['instruction']}（{n}）")
        for f in ("input", "output", "category"):
            out[f].append(row[f])
        out["index"].append(str(n))
    return Dataset.from_dict(out)


def main() -> None:
    import fugashi

    parser = argparse.ArgumentParser()
    parser.add_argument("--num-proc", type=int, default=2)
    args = parser.parse_args()
    data = corpus()
    texts = [t for f in ("instruction", "input", "output") for t in data[f]]

    tagger = fugashi.Tagger()
    started = time.perf_counter()
    for text in texts:
        tagger(text)
    tokenize = time.perf_counter() - started

    started = time.perf_counter()
    revised, report = revise(data, num_proc=args.num_proc)
    revision = time.perf_counter() - started
    print(f"records: {len(data)} in, {len(revised)} out; num_proc={args.num_proc}")
    print(f"fugashi tokenization of all text: {tokenize:.1f} s")
    print(f"revision (steps 1-5): {revision:.1f} s")
    print(f"ratio revision / tokenization = {revision / tokenize:.1f}")


if __name__ == "__main__":
    main()
