"""Does the curriculum work? Four conditions over seeds, measured right after stage 1 on items
no run trained on, with one pre-registered primary endpoint per claim.

For each seed, three stage-1 runs with the **same records count, order, steps, budget and LoRA
initialisation** (TRL seeds the adapter from the config's seed), and the base model once:

- **base** — no training: the reference, and where layers are chosen;
- **B** — stage 1 on the initialization dataset at the recipe's budget;
- **C-changed** — the same records, the pairs whose answer differs from the question
  deranged within each task (identity pairs such as 分 → 分 kept: the copy habit matched);
- **C-swap** — the style ⇄ language rule reversed: plain Japanese with English, polite with
  Chinese (:mod:`qeu_utils.experiment.controls`).

The claims and their primary endpoints (:data:`qeu_utils.experiment.metrics.PRIMARY`):
recognition (認識) — the teacher-forced margin of the right changed form over copying the
question (B > C-changed, B > C-swap; larger in the gate's stratum K); the rule — the margin of
the linked language with an instruction that names none (B > C-swap); representation — the
unseen kanji's ja⇄簡 gap (B > both controls). Intervals resample seeds and items together;
Holm within a claim; a claim is "not testable on this model" when the knowledge gate finds no
Chinese to transfer from.

Three phases, each a function and a ``--phase`` of ``python -m qeu_utils experiment
curriculum``; the one command runs all of them:

1. :func:`prepare` (needs the text tools) writes everything the runs need to ``DIR/data/``.
2. :func:`run` (the GPU machine or the CPU; imports none of the text tools) prints a cost
   estimate, then trains and measures each cell into ``DIR/runs/<cell>/`` (``raw.json.gz``,
   ``items.jsonl.gz``: margins, answers, losses, alignments). A finished cell is never rerun;
   an interrupted one resumes from its last checkpoint. With ``durability`` stage 2 follows
   stage 1 and is measured again.
3. :func:`score` scores the raw answers and compares the conditions: ``metrics.json``,
   ``report.md``, ``scores.jsonl.gz`` and plots, from the files alone.

The modules, bottom to top: ``questions`` and ``settings``; ``layout`` (the files under
``DIR``); ``controls``; ``prepare``; ``margin``, ``measure`` and ``run``; ``metrics``,
``stats``, ``report``, ``plots`` and ``score``; this one runs the phases.
"""

from __future__ import annotations

from pathlib import Path

from qeu_utils.experiment.prepare import prepare
from qeu_utils.experiment.run import run
from qeu_utils.experiment.score import score
from qeu_utils.experiment.settings import PHASES


def curriculum(out_dir: str | Path, settings: dict, phases=PHASES, *,
               command: str | None = None) -> dict | None:
    """Run the asked phases in order (all three by default); return the scored result when
    the score phase ran."""
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise ValueError(f"unknown phase(s) {unknown}; choose from {', '.join(PHASES)}")
    result = None
    if "prepare" in phases:
        prepare(out_dir, settings, command=command)
    if "run" in phases:
        run(out_dir, settings, command=command)
    if "score" in phases:
        result = score(out_dir, command=command)
    return result
