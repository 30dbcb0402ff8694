"""Held-out loss: completion-only cross-entropy, masked exactly like training (the prompt from
:func:`qeu_utils.model.prompting.render` gets label -100), per category and overall,
token-weighted.
"""

from __future__ import annotations

import math
from collections import defaultdict

from qeu_utils.core.log import progress as progress_bar
from qeu_utils.evaluation.generation import (
    add_special_tokens,
    check_records,
    index_batches,
    pad_id,
)
from qeu_utils.model.loss import token_nll
from qeu_utils.model.prompting import render, resolve_template

__all__ = ["heldout_loss", "loss_batches", "encode_for_loss"]


def encode_for_loss(record: dict, tokenizer, template: str) -> tuple[list[int], int]:
    """``(input_ids, prompt_length)`` of ``prompt + completion`` as training sees it: the
    completion starts where the tokenized prompt and the tokenized whole first differ."""
    prompt, completion = render(record, tokenizer, template)
    special = add_special_tokens(template)
    prompt_ids = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    ids = tokenizer(prompt + completion, add_special_tokens=special)["input_ids"]
    n = 0
    while n < min(len(prompt_ids), len(ids)) and prompt_ids[n] == ids[n]:
        n += 1
    return ids, n


def loss_batches(records, tokenizer, *, template: str = "auto", batch_size: int = 8):
    """``(indices, input_ids, attention_mask, labels)`` batches of ``records`` for a
    completion-only loss: longest first (sequences of similar length share a batch, less
    padding), right-padded, the prompt and the padding labelled -100, as in training."""
    import torch

    template = resolve_template(tokenizer, template)
    encoded = [encode_for_loss(r, tokenizer, template) for r in records]
    pad = pad_id(tokenizer)
    order = sorted(range(len(records)), key=lambda i: -len(encoded[i][0]))
    for batch in index_batches(order, batch_size):
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, i in enumerate(batch):
            seq, prompt_len = encoded[i]
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
            labels[row, prompt_len:len(seq)] = torch.tensor(seq[prompt_len:])
        yield batch, ids, mask, labels


def heldout_loss(model, tokenizer, records, *, template: str = "auto", batch_size: int = 8,
                 per_record: bool = False, progress=False) -> dict:
    """Mean completion-only cross-entropy (nats per token), token-weighted, per category and
    overall: ``{"overall": {"loss", "perplexity", "tokens", "records"}, "by_category": {...}}``.
    Prompt tokens and padding are masked with -100, exactly like training, and the LM head
    runs on the labelled positions only (``qeu_utils.model.loss``).

    ``per_record=True`` adds ``"per_record"``: ``[{"nll", "tokens"}, ...]`` in the records'
    order (summed loss and supervised tokens of each record), what a paired comparison of two
    models over the same records needs. ``progress``: a tqdm bar (a string labels it)."""
    import torch

    records = check_records(records)
    sums: dict[str, float] = defaultdict(float)
    tokens: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    each: list[dict] = [{}] * len(records)
    batches = loss_batches(records, tokenizer, template=template, batch_size=batch_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch, ids, mask, labels in progress_bar(batches, progress,
                                                      -(-len(records) // batch_size)):
                ids, mask, labels = (t.to(model.device) for t in (ids, mask, labels))
                nll, keep = token_nll(model, labels, input_ids=ids, attention_mask=mask)
                rows = keep.nonzero()[:, 0]  # the row of each labelled token, in nll's order
                per_row = torch.zeros(len(batch), dtype=torch.float64, device=nll.device)
                per_row = per_row.index_add_(0, rows, nll.double()).tolist()
                per_row_tokens = keep.sum(dim=1).tolist()
                for row, i in enumerate(batch):
                    category = records[i]["category"]
                    sums[category] += per_row[row]
                    tokens[category] += per_row_tokens[row]
                    counts[category] += 1
                    each[i] = {"nll": per_row[row], "tokens": per_row_tokens[row]}
    finally:
        model.train(was_training)
    by_category = {c: _loss_entry(sums[c], tokens[c], counts[c]) for c in sorted(sums)}
    overall = _loss_entry(sum(sums.values()), sum(tokens.values()), len(records))
    result = {"overall": overall, "by_category": by_category}
    if per_record:
        result["per_record"] = each
    return result


def _loss_entry(total: float, tokens: int, records: int) -> dict:
    loss = total / tokens if tokens else float("nan")
    perplexity = math.exp(loss) if loss < 700 else float("inf")
    return {"loss": loss, "perplexity": perplexity, "tokens": tokens, "records": records}
