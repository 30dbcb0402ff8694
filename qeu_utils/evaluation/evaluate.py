"""Evaluation before and after each training stage: held-out loss and a probe.

``probe`` generates greedy answers (``generation``) to the first records of each task and scores
them (``scoring``); ``evaluate`` runs the held-out loss (``heldout``) on all records and the
probe. ``tables`` turns two results into markdown.
"""

from __future__ import annotations

import time
from collections import defaultdict

from qeu_utils.core.records import prompt_text
from qeu_utils.evaluation.generation import check_records, generate_answers
from qeu_utils.evaluation.heldout import heldout_loss
from qeu_utils.evaluation.scoring import (
    COMPLIANCE_TASKS,
    EXACT_MATCH_CATEGORIES,
    FIRST_LINE_CATEGORIES,
    compliant,
    exact_match,
)
from qeu_utils.model.prompting import resolve_template

__all__ = ["select", "probe", "evaluate"]


def _rate(hits: list[bool]) -> dict:
    return {"rate": sum(hits) / len(hits), "n": len(hits), "hits": sum(hits)}


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
    records = select(check_records(records), limit)
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
    records = check_records(records)
    template = resolve_template(tokenizer, template)
    loss = heldout_loss(model, tokenizer, records, template=template)
    probed = probe(model, tokenizer, records, template=template,
                   max_new_tokens=max_new_tokens, limit=probe_limit)
    return {"template": template, "records": len(records), "loss": loss, **probed,
            "seconds": round(time.perf_counter() - start, 2)}
