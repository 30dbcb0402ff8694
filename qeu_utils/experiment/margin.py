"""The primary endpoint's measurement: a teacher-forced log-probability margin, no generation.

For a probe record, the prompt is rendered exactly as in training
(:func:`qeu_utils.model.prompting.render`), and each candidate answer is scored as the
completion training supervises: the answer followed by the template's end (the chat template's
end-of-turn, or the EOS after an Alpaca answer), so a candidate that is only the start of a
longer answer does not count as that answer. The margin is

    log p(right answer + end | prompt) − log p(rival + end | prompt),

summed over the completion's tokens. For recognition the rival is the copy of the question's
form (鉄 → 铁 against 鉄 → 鉄): a positive margin means the model prefers the changed form over
echoing the question.

Most of a probe's tokens are its prompt, and most of the prompt is the template's (the
Alpaca preamble, a chat template's system turn). So the records are grouped by the template
text before their instruction, and :func:`qeu_utils.analysis.gate.continuation_logprobs`
runs that shared head once per group, each record's own prompt once, and each candidate
after it from the cached keys and values — batched, about 3–4× less work than scoring both
whole sequences. It is used only where its tokens are exactly the ones training sees
(:func:`qeu_utils.evaluation.heldout.encode_for_loss`, checked per record); any other record
goes through :func:`qeu_utils.evaluation.heldout.heldout_loss` whole.
"""

from __future__ import annotations

from collections import defaultdict

from qeu_utils.core.records import record_id
from qeu_utils.evaluation.heldout import encode_for_loss, heldout_loss
from qeu_utils.model.prompting import render, resolve_template


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
    pairs = [(r, _answered(r, rival)) for r, rival in zip(records, rivals, strict=True)]
    scored: dict[int, tuple] = {}
    groups, whole = _shared_heads(tokenizer, pairs)
    for head, members in groups.items():
        tails = [tail for _, tail, _ in members]
        cands = [cand for _, _, cand in members]
        found = _continuations(model, tokenizer, head, tails, cands, batch_size)
        for (i, _, _), row in zip(members, found, strict=True):
            scored[i] = ((float(row[0, 0]), int(row[0, 1])), (float(row[1, 0]), int(row[1, 1])))
    if whole:
        rows = completion_logprobs(model, tokenizer, [x for i in whole for x in pairs[i]],
                                   batch_size=batch_size, progress=progress)
        for k, i in enumerate(whole):
            scored[i] = (rows[2 * k], rows[2 * k + 1])
    return [{"logp": right[0], "rival_logp": rival[0], "margin": right[0] - rival[0],
             "tokens": right[1], "rival_tokens": rival[1]}
            for right, rival in (scored[i] for i in range(len(records)))]


def _continuations(model, tokenizer, head, tails, cands, batch_size):
    from qeu_utils.analysis.gate import continuation_logprobs

    return continuation_logprobs(model, tokenizer, head, tails, cands, batch_size=batch_size)


def _shared_heads(tokenizer, pairs) -> tuple[dict, list[int]]:
    """``({head: [(index, tail, [right, rival])]}, [indices scored whole])``: each pair's
    prompt split where its instruction starts, kept only where the head, tail and candidates
    tokenize (as :func:`qeu_utils.analysis.gate.encode_group` does) to exactly the ids
    training gives both whole sequences."""
    from qeu_utils.analysis.gate import encode_group

    template = resolve_template(tokenizer)
    groups: dict[str, list] = defaultdict(list)
    whole = []
    for i, (right, rival) in enumerate(pairs):
        prompt, right_text = render(right, tokenizer, template)
        rival_text = render(rival, tokenizer, template)[1]
        cut = prompt.find(right["instruction"])
        if cut <= 0:
            whole.append(i)
            continue
        head, tail = prompt[:cut], prompt[cut:]
        head_ids, tail_ids, cand_ids = encode_group(tokenizer, head, [tail],
                                                    [[right_text, rival_text]])
        base = head_ids + tail_ids[0]
        if all((base + c, len(base)) == encode_for_loss(r, tokenizer, template)
               for c, r in zip(cand_ids[0], (right, rival), strict=True)):
            groups[head].append((i, tail, [right_text, rival_text]))
        else:
            whole.append(i)
    return groups, whole


def _answered(record: dict, output: str) -> dict:
    """``record`` with another output (and the id that goes with it)."""
    return {**record, "output": output, "id": record_id(
        record["category"], record["task"], record["instruction"], record["input"], output)}
