"""Does the curriculum work? Conditions A / B / C over seeds, probed on items no run trained on.

For each seed, three runs end in a stage-2 model with the **same stage-2 budget, data order and
LoRA initialisation** (TRL seeds the adapter from the config's seed):

- **A** — stage 2 only: a fresh adapter on the base model;
- **B** — stage 1 on the initialization dataset at the recipe's budget, merged into the base,
  then a fresh stage-2 adapter;
- **C** — the control: stage 1 on a *link-broken* copy of the same records (each answer swapped
  with another answer of the same task: same texts, scripts, formats and tokens, but the
  Japanese no longer paired with its Chinese, English or gloss), merged, then stage 2;
- **D** (optional, ``extra_stage2``) — A with extra stage-2 steps worth B's stage-1 tokens.

B − A asks whether stage 1 helps at all; B − C whether it is the *links* that help rather than
more steps on CJK-looking text. The base model is measured too, as the reference for
forgetting and for choosing layers.

Three phases, each a function and a ``--phase`` of ``python -m qeu_utils experiment
curriculum``; the one command runs all of them:

1. :func:`prepare` (needs the text tools: fugashi, OpenCC, Babel, JMdict) writes everything the
   runs need to ``DIR/data/``: the init splits, the link-broken copy, probes on unseen items,
   seen/unseen kanji, sentences, logit-lens prompts, forgetting questions, Dolly parts.
2. :func:`run` (the GPU machine; imports none of the text tools) trains and measures each
   (condition, seed) into ``DIR/runs/<cond>-s<seed>/raw.json``: raw generations, per-item
   losses, alignments and logit-lens probabilities. A finished cell is never rerun; an
   interrupted one resumes from its last checkpoint.
3. :func:`score` scores the raw answers (exact match, a softer match, style compliance),
   computes paired differences with 95% intervals and writes ``metrics.json``, ``report.md``
   and plots.

The modules, bottom to top: ``questions`` and ``settings``; ``layout`` (the files under
``DIR``); ``controls`` (the link-broken copy); ``prepare``; ``measure`` and ``run``;
``metrics``, ``stats``, ``report``, ``plots`` and ``score``; this one runs the phases.
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
