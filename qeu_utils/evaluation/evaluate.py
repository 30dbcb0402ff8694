"""Evaluation before and after each training stage: held-out loss, probes, script compliance.

- ``heldout_loss``: completion-only cross-entropy, masked exactly like training (the prompt
  from :func:`qeu_utils.model.prompting.render` gets label -100), per category and overall,
  token-weighted.
- ``generate_answers``: greedy answers to the same prompts the model is trained on.
- ``probe``: exact match for the short-answer categories (kanji, country, katakana, food) and
  compliance for the style ⇄ language tasks (plain → Chinese, polite → English, and the asked
  常体/敬体 style for the Japanese outputs).
- ``evaluate`` runs both; ``compare`` and ``side_by_side`` turn two results into markdown;
  ``save_results`` writes them as JSON.
"""

from __future__ import annotations

import math
import os
import re
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_text
from qeu_utils.core.log import progress as progress_bar
from qeu_utils.core.records import prompt_text, validate
from qeu_utils.model.loss import token_nll
from qeu_utils.model.prompting import render, resolve_template

__all__ = [
    "heldout_loss",
    "generate_answers",
    "exact_match",
    "is_chinese",
    "is_english",
    "has_style",
    "compliant",
    "probe",
    "evaluate",
    "compare",
    "side_by_side",
    "save_results",
]

# Categories whose answers are short facts, scored by exact match.
EXACT_MATCH_CATEGORIES = ("kanji", "country", "katakana", "food")
# Of those, the ones whose answer may be followed by an explanation on later lines.
FIRST_LINE_CATEGORIES = ("kanji", "country", "katakana")
# Task → what a compliant answer is: a script, or the Japanese style the record asks for.
COMPLIANCE_TASKS = {
    "plain_to_zh": "chinese",
    "polite_to_en": "english",
    "en_to_polite": "style",
    "zh_to_plain": "style",
    "plain_to_polite": "style",
    "polite_to_plain": "style",
}

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f\U0001b000-\U0001b16f]")
_TRAILING = "。.!"


# --- input -------------------------------------------------------------------------------


def _check(records) -> list[dict]:
    """The records as a list; a clear error for an empty list or a record off the schema."""
    records = list(records)
    if not records:
        raise ValueError("no records to evaluate: the records list is empty")
    for i, record in enumerate(records):
        validate(record, where=f"records[{i}]")
    return records


def _batches(order: list[int], size: int):
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    for start in range(0, len(order), size):
        yield order[start:start + size]




def _add_special_tokens(template: str) -> bool:
    # As TRL tokenizes: a chat-rendered text already holds its special tokens; a plain
    # text prompt gets the tokenizer's usual ones (a BOS for Llama-style tokenizers).
    return template != "chat"


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    return tokenizer.eos_token_id if pad is None else pad


# --- held-out loss -----------------------------------------------------------------------


def encode_for_loss(record: dict, tokenizer, template: str) -> tuple[list[int], int]:
    """``(input_ids, prompt_length)`` of ``prompt + completion`` as training sees it: the
    completion starts where the tokenized prompt and the tokenized whole first differ."""
    prompt, completion = render(record, tokenizer, template)
    special = _add_special_tokens(template)
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
    pad = _pad_id(tokenizer)
    order = sorted(range(len(records)), key=lambda i: -len(encoded[i][0]))
    for batch in _batches(order, batch_size):
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

    records = _check(records)
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


# --- generation --------------------------------------------------------------------------


def generate_answers(model, tokenizer, records, *, template: str = "auto",
                     max_new_tokens: int = 48, batch_size: int = 8, progress=False) -> list[str]:
    """Greedy answers, one string per record, in the records' order. Prompts are rendered as
    in training, batched with LEFT padding (prompts of similar length together); only the new
    tokens are decoded (special tokens skipped, whitespace and a character cut off at
    ``max_new_tokens`` stripped). ``progress``: a tqdm bar (a string labels it)."""
    import torch
    from transformers import GenerationConfig

    records = _check(records)
    template = resolve_template(tokenizer, template)
    special = _add_special_tokens(template)
    prompts = [tokenizer(render(r, tokenizer, template)[0], add_special_tokens=special)
               ["input_ids"] for r in records]
    pad = _pad_id(tokenizer)
    eos = _eos_ids(model, tokenizer)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=pad, eos_token_id=eos)
    answers = [""] * len(records)
    order = sorted(range(len(records)), key=lambda i: -len(prompts[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in progress_bar(_batches(order, batch_size), progress,
                                   -(-len(order) // batch_size)):
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = prompts[i]
                    ids[row, width - len(seq):] = torch.tensor(seq)
                    mask[row, width - len(seq):] = 1
                out = model.generate(input_ids=ids.to(model.device),
                                     attention_mask=mask.to(model.device),
                                     generation_config=config)
                texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
                for row, i in enumerate(batch):
                    # A character cut by max_new_tokens decodes to U+FFFD: drop that stub.
                    answers[i] = texts[row].rstrip("\ufffd").strip()
    finally:
        model.train(was_training)
    return answers


def _eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends an answer: the model's generation eos ids and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


# --- metrics -----------------------------------------------------------------------------


def _normalize(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    while text and text[-1] in _TRAILING:
        text = text[:-1].rstrip()
    return text


def exact_match(answer: str, expected: str, *, first_line: bool = False) -> bool:
    """Whether ``answer`` gives ``expected``, after NFKC, whitespace normalization and dropping
    trailing 。 . !.

    An ambiguous kanji answer such as ``辨・辯・瓣・弁（意味によって字が異なります）`` matches an
    answer that contains every listed form. With ``first_line=True`` (short answers: kanji,
    country, katakana) an answer whose first line is the expected answer also matches.
    """
    from qeu_utils.text.kanji import SEVERAL, answer_forms

    got, want = _normalize(answer), _normalize(expected)
    if got == want:
        return True
    if expected.strip().endswith(SEVERAL):
        forms = [_normalize(f) for f in answer_forms(expected)]
        if all(f and f in got for f in forms):
            return True
    if first_line and got:
        head = _normalize(unicodedata.normalize("NFKC", answer).strip().splitlines()[0])
        return head == want
    return False


def is_chinese(text: str) -> bool:
    """Han characters and no kana: Chinese, not Japanese."""
    return bool(_HAN.search(text)) and not _KANA.search(text)


def is_english(text: str, threshold: float = 0.9) -> bool:
    """No kana or Han, and at least ``threshold`` of the letters are ASCII letters."""
    if _HAN.search(text) or _KANA.search(text):
        return False
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    ascii_letters = sum(1 for c in letters if c.isascii())
    return ascii_letters / len(letters) >= threshold


def asked_style(record: dict) -> str:
    """The Japanese style a record's answer should have: its ``style`` field, else the task
    name (``…_to_polite`` / ``…_to_plain``)."""
    if record["style"]:
        return record["style"]
    return record["task"].rsplit("_", 1)[-1]


def has_style(text: str, style: str) -> bool:
    """Whether ``detect_style(text)`` is ``style`` (``plain`` or ``polite``)."""
    from qeu_utils.text.style import detect_style

    return detect_style(text).value == style


def compliant(record: dict, answer: str) -> bool:
    """Whether ``answer`` is what a style task asks for: Chinese for ``plain_to_zh``, English
    for ``polite_to_en``, the asked 常体/敬体 style for the Japanese outputs."""
    if record["task"] not in COMPLIANCE_TASKS:
        raise ValueError(f"task {record['task']!r} has no compliance rule; known: "
                         f"{', '.join(COMPLIANCE_TASKS)}")
    kind = COMPLIANCE_TASKS[record["task"]]
    if kind == "chinese":
        return is_chinese(answer)
    if kind == "english":
        return is_english(answer)
    return has_style(answer, asked_style(record))


def _rate(hits: list[bool]) -> dict:
    return {"rate": sum(hits) / len(hits), "n": len(hits), "hits": sum(hits)}


# --- probe and evaluate ------------------------------------------------------------------


def select(records, limit: int | None = None) -> list[dict]:
    """The first ``limit`` records of each task (all when ``limit`` is None), tasks in order
    of first appearance, records in their given order."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_task[record["task"]].append(record)
    return [r for rows in by_task.values() for r in (rows if limit is None else rows[:limit])]


def probe(model, tokenizer, records, *, template: str = "auto", max_new_tokens: int = 48,
          limit: int | None = None) -> dict:
    """Generate answers and score them.

    ``exact_match``: ``{"overall": ..., "<category>/<task>": ...}`` for the kanji, country,
    katakana and food records; ``compliance``: per style task (plain_to_zh → Chinese,
    polite_to_en → English, en_to_polite / zh_to_plain / plain_to_polite / polite_to_plain
    → the asked style). Each entry is ``{"rate", "n", "hits"}``. ``samples``: every probed
    record with its prompt, expected output and answer.
    """
    records = select(_check(records), limit)
    answers = generate_answers(model, tokenizer, records, template=template,
                               max_new_tokens=max_new_tokens)
    matches: dict[str, list[bool]] = defaultdict(list)
    compliance: dict[str, list[bool]] = defaultdict(list)
    samples = []
    for record, answer in zip(records, answers, strict=True):
        sample = {"id": record["id"], "category": record["category"], "task": record["task"],
                  "prompt": prompt_text(record), "expected": record["output"], "answer": answer}
        if record["category"] in EXACT_MATCH_CATEGORIES:
            hit = exact_match(answer, record["output"],
                              first_line=record["category"] in FIRST_LINE_CATEGORIES)
            matches[f"{record['category']}/{record['task']}"].append(hit)
            matches["overall"].append(hit)
            sample["exact_match"] = hit
        if record["task"] in COMPLIANCE_TASKS:
            ok = compliant(record, answer)
            compliance[record["task"]].append(ok)
            sample["compliant"] = ok
        samples.append(sample)
    exact = {k: _rate(matches[k]) for k in sorted(matches, key=lambda k: (k != "overall", k))}
    return {"exact_match": exact,
            "compliance": {k: _rate(compliance[k]) for k in sorted(compliance)},
            "samples": samples}


def evaluate(model, tokenizer, records, *, template: str = "auto", max_new_tokens: int = 48,
             probe_limit: int | None = None) -> dict:
    """Held-out loss on all records and a probe on the first ``probe_limit`` per task:
    ``{"template", "records", "loss", "exact_match", "compliance", "samples", "seconds"}``."""
    start = time.perf_counter()
    records = _check(records)
    template = resolve_template(tokenizer, template)
    loss = heldout_loss(model, tokenizer, records, template=template)
    probed = probe(model, tokenizer, records, template=template,
                   max_new_tokens=max_new_tokens, limit=probe_limit)
    return {"template": template, "records": len(records), "loss": loss, **probed,
            "seconds": round(time.perf_counter() - start, 2)}


# --- reporting ---------------------------------------------------------------------------


def _loss_part(result: dict) -> dict:
    # Accept an ``evaluate`` result or a bare ``heldout_loss`` result.
    return result.get("loss", result if "overall" in result and "by_category" in result else {})


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _change(before: float | None, after: float | None, digits: int = 4) -> str:
    if before is None or after is None or not math.isfinite(before) or not math.isfinite(after):
        return "—"
    delta = after - before
    relative = f" ({delta / before:+.1%})" if before else ""
    return f"{delta:+.{digits}f}{relative}"


def _fmt_rate(entry: dict | None) -> str:
    return "—" if entry is None else f"{entry['rate']:.1%} ({entry['hits']}/{entry['n']})"


def _change_rate(before: dict | None, after: dict | None) -> str:
    if before is None or after is None:
        return "—"
    return f"{(after['rate'] - before['rate']) * 100:+.1f} pt"


def compare(before: dict, after: dict) -> str:
    """A markdown table ``metric | before | after | change`` of two ``evaluate`` results:
    overall loss and perplexity, loss per category, each exact-match and compliance rate."""
    rows = ["| metric | before | after | change |", "|---|---:|---:|---:|"]
    lb, la = _loss_part(before), _loss_part(after)
    for key, label in (("loss", "loss (overall)"), ("perplexity", "perplexity (overall)")):
        b = lb.get("overall", {}).get(key)
        a = la.get("overall", {}).get(key)
        rows.append(f"| {label} | {_fmt(b)} | {_fmt(a)} | {_change(b, a)} |")
    cb, ca = lb.get("by_category", {}), la.get("by_category", {})
    for category in sorted(set(cb) | set(ca)):
        b = cb.get(category, {}).get("loss")
        a = ca.get(category, {}).get("loss")
        rows.append(f"| loss: {category} | {_fmt(b)} | {_fmt(a)} | {_change(b, a)} |")
    for part, label in (("exact_match", "exact match"), ("compliance", "compliance")):
        pb, pa = before.get(part, {}), after.get(part, {})
        for key in list(dict.fromkeys([*pb, *pa])):
            b, a = pb.get(key), pa.get(key)
            rows.append(f"| {label}: {key} | {_fmt_rate(b)} | {_fmt_rate(a)} | "
                        f"{_change_rate(b, a)} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>") or "∅"


def side_by_side(before: dict, after: dict, n: int = 5) -> str:
    """Markdown table of ``n`` probe samples (one task after another, round robin): prompt,
    expected output, the answer before and the answer after."""
    after_by_id = {s["id"]: s for s in after.get("samples", [])}
    by_task: dict[str, list[dict]] = defaultdict(list)
    for sample in before.get("samples", []):
        if sample["id"] in after_by_id:
            by_task[sample["task"]].append(sample)
    picked: list[dict] = []
    queues = list(by_task.values())
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    rows = ["| task | prompt | expected | before | after |", "|---|---|---|---|---|"]
    for s in picked:
        rows.append(f"| {s['task']} | {_cell(s['prompt'])} | {_cell(s['expected'])} | "
                    f"{_cell(s['answer'])} | {_cell(after_by_id[s['id']]['answer'])} |")
    return "\n".join(rows) + "\n"


def save_results(results: dict, path: str | os.PathLike) -> Path:
    """Write results as JSON (UTF-8, ``ensure_ascii=False``, indent 2); atomic."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return path
