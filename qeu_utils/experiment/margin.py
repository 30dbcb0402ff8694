"""The primary endpoint's measurement: a teacher-forced log-probability margin, no generation.

For a probe record, the prompt is rendered exactly as in training
(:func:`qeu_utils.model.prompting.render`), and each candidate answer is scored as the
completion training supervises: the answer followed by the template's end (the chat template's
end-of-turn, or the EOS after an Alpaca answer), so a candidate that is only the start of a
longer answer does not count as that answer. The margin is

    log p(right answer + end | prompt) − log p(rival + end | prompt),

summed over the completion's tokens. For recognition the rival is the copy of the question's
form (鉄 → 铁 against 鉄 → 鉄): a positive margin means the model prefers the changed form over
echoing the question. Both completions of every record go through
:func:`qeu_utils.evaluation.heldout.heldout_loss` in one batched pass (longest first, the
prompt masked as in training, the LM head only where a label is set).
"""

from __future__ import annotations

from qeu_utils.core.records import record_id
from qeu_utils.evaluation.heldout import heldout_loss


def completion_logprobs(model, tokenizer, records: list[dict], *, batch_size: int = 16,
                        progress=False) -> list[tuple[float, int]]:
    """``(log p, tokens)`` of each record's output (with the template's end) after its
    prompt, summed over the completion's tokens, in the records' order."""
    rows = heldout_loss(model, tokenizer, records, batch_size=batch_size, per_record=True,
                        progress=progress)["per_record"]
    return [(-r["nll"], r["tokens"]) for r in rows]


def margins(model, tokenizer, records: list[dict], rivals: list[str], *,
            batch_size: int = 16, progress=False) -> list[dict]:
    """Per record: ``{"logp", "rival_logp", "margin", "tokens", "rival_tokens"}``, the margin
    being ``logp − rival_logp`` (nats); ``records[i]["output"]`` is the right answer and
    ``rivals[i]`` the rival scored after the same prompt."""
    if len(records) != len(rivals):
        raise ValueError(f"{len(records)} records but {len(rivals)} rivals")
    if not records:
        return []
    both = list(records) + [_answered(r, rival) for r, rival in zip(records, rivals, strict=True)]
    scored = completion_logprobs(model, tokenizer, both, batch_size=batch_size,
                                 progress=progress)
    n = len(records)
    return [{"logp": right[0], "rival_logp": rival[0], "margin": right[0] - rival[0],
             "tokens": right[1], "rival_tokens": rival[1]}
            for right, rival in zip(scored[:n], scored[n:], strict=True)]


def _answered(record: dict, output: str) -> dict:
    """``record`` with another output (and the id that goes with it)."""
    return {**record, "output": output, "id": record_id(
        record["category"], record["task"], record["instruction"], record["input"], output)}
