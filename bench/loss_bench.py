"""Held-out loss: the LM head on the labelled positions only (``qeu_utils.model.loss``) against the
model's full forward (logits for every position), same model, records and batches, one process.

The records are the shipped Dolly sample's held-out part, revised as notebook 07 does: long
prompts (instruction + context) with answers after them — the case every stage-2 evaluation
and the curriculum experiment measure. Three ways: the full forward with the cross-entropy over
``[batch, vocab, length]`` logits (what ``heldout_loss`` did before), the full forward with a
flat cross-entropy, and ours. Printed: seconds per pass (best of ``--repeats``), the ratios,
and each way's loss of the first record next to its float64 value.
Run: python bench/loss_bench.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def dolly_eval_records() -> list[dict]:
    from qeu_utils.builders.dolly import build_dolly
    from qeu_utils.core.records import read_jsonl
    from qeu_utils.core.resources import dolly_sample_path

    out = Path(tempfile.mkdtemp()) / "dolly"
    build_dolly(dolly_sample_path(), out, parts=4, seed=0)
    return read_jsonl(out / "part-4-of-4.jsonl")


def full_forward_loss(model, batches, transposed: bool = False) -> float:
    """The baseline: the model's logits at every position, then the masked cross-entropy —
    over flattened positions, or (``transposed``) over ``[batch, vocab, length]`` logits, as
    ``heldout_loss`` computed it before ``qeu_utils.model.loss``."""
    import torch
    import torch.nn.functional as F

    total = 0.0
    with torch.no_grad():
        for ids, mask, labels in batches:
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            if transposed:
                nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:],
                                      reduction="sum")
            else:
                nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                      labels[:, 1:].reshape(-1), reduction="sum")
            total += nll.item()
    return total


def head_on_labels_loss(model, batches) -> float:
    import torch

    from qeu_utils.model.loss import token_nll

    total = 0.0
    with torch.no_grad():
        for ids, mask, labels in batches:
            nll, _ = token_nll(model, labels, input_ids=ids, attention_mask=mask)
            total += nll.sum().item()
    return total


def best_of(repeats: int, work) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = work()
        times.append(time.perf_counter() - started)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from qeu_utils.evaluation.heldout import loss_batches
    from qeu_utils.model.loss import fast_loss_ok
    from qeu_utils.model.models import load_model

    model, tokenizer = load_model(args.model, dtype="float32")
    model.eval()
    if not fast_loss_ok(model):
        raise SystemExit(f"{args.model}: its loss goes through the model's own forward; "
                         "nothing to compare")
    records = dolly_eval_records()
    # the very batches heldout_loss scores
    batches = [b[1:] for b in loss_batches(records, tokenizer, batch_size=args.batch_size)]
    tokens = sum(int(m.sum()) for _, m, _ in batches)
    labelled = sum(int((lab[:, 1:] != -100).sum()) for _, _, lab in batches)
    print(f"{len(records)} held-out Dolly records, {tokens:,} tokens, {labelled:,} labelled; "
          f"{args.model}, {torch.get_num_threads()} threads")
    before_s, before_loss = best_of(
        args.repeats, lambda: full_forward_loss(model, batches, transposed=True))
    base_s, base_loss = best_of(args.repeats, lambda: full_forward_loss(model, batches))
    ours_s, ours_loss = best_of(args.repeats, lambda: head_on_labels_loss(model, batches))
    print(f"full forward, [B, V, T] cross-entropy (before): {before_s:6.2f} s/pass, "
          f"summed loss {before_loss:.4f}")
    print(f"full forward, flat cross-entropy:               {base_s:6.2f} s/pass, "
          f"summed loss {base_loss:.4f}")
    print(f"LM head on labels only (qeu_utils.model.loss):        {ours_s:6.2f} s/pass, "
          f"summed loss {ours_loss:.4f}")
    print(f"ratio before / ours: {before_s / ours_s:.2f}x; full forward / ours: "
          f"{base_s / ours_s:.2f}x")
    # Which summation is closer to the exact value, on the first batch's first record?
    ids, mask, labels = (t[:1] for t in batches[0])
    n = int(mask.sum())
    ids, mask, labels = ids[:, :n], mask[:, :n], labels[:, :n]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[0, :-1]
    target = labels[0, 1:]
    keep = target != -100
    exact = torch.nn.functional.cross_entropy(logits[keep].double(), target[keep],
                                              reduction="sum").item()
    one = [(ids, mask, labels)]
    print(f"first record: float64 {exact:.4f}; before "
          f"{full_forward_loss(model, one, transposed=True):.4f}, full forward flat "
          f"{full_forward_loss(model, one):.4f}, LM head on labels "
          f"{head_on_labels_loss(model, one):.4f}")


if __name__ == "__main__":
    main()
