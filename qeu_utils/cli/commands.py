"""The commands of ``python -m qeu_utils``: each a thin wrapper over a function of the
package (``cli.main`` builds the parser and runs them), so everything the CLI does can also
be done from a notebook or a script."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path

from qeu_utils.analysis.analyze import analyze
from qeu_utils.analysis.gate import run_gate
from qeu_utils.builders.dolly import DEFAULT_TRIVIA_TOPICS, build_dolly
from qeu_utils.builders.mix import (
    DEFAULT_PROPORTIONS,
    build_init,
    instruction_style_lines,
    push_to_hub,
    write_init,
)
from qeu_utils.experiment.pipeline import curriculum
from qeu_utils.experiment.settings import resolve_settings
from qeu_utils.model.models import ALIASES, resolve_model
from qeu_utils.notebooks.demo import run_notebooks
from qeu_utils.notebooks.session import set_repo
from qeu_utils.sharing import chat
from qeu_utils.sharing.export import export
from qeu_utils.training.config import cli_overrides, resolve


def cmd_models_fetch(args) -> int:
    print(resolve_model(args.name))
    return 0


def cmd_models_list(args) -> int:
    for alias in ALIASES.values():
        print(f"{alias.name:24} {alias.description}")
    return 0


def cmd_demo(args) -> int:
    report = run_notebooks(
        notebook_dir=args.notebooks,
        profile=args.profile,
        run_dir=args.out,
        only=args.only,
        store=args.store,
    )
    print(report.read_text(encoding="utf-8"))
    print(f"Report: {report}")
    return 0


def cmd_notebooks_set_repo(args) -> int:
    changed = set_repo(args.root, args.url, args.ref)
    for path in changed:
        print(f"updated {path}")
    print(f"{len(changed)} file(s) changed")
    return 0


def parse_size(value: str) -> int | None:
    if value == "all":
        return None
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size must be a number or 'all', got {value!r}"
        ) from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"--size must be positive, got {size}")
    return size


def parse_proportions(value: str) -> dict[str, float]:
    """``style=0.5,kanji=0.3`` → {"style": 0.5, "kanji": 0.3}."""
    result = {}
    for part in value.split(","):
        name, sep, number = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--proportions: missing '=' in {part!r}")
        try:
            result[name.strip()] = float(number)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--proportions takes category=number pairs, got {part!r}"
            ) from None
    return result


def cmd_build_init(args) -> int:
    proportions = dict(DEFAULT_PROPORTIONS)
    proportions.update(args.proportions or {})
    train, held_out = build_init(
        size=args.size, seed=args.seed, categories=args.categories,
        proportions=proportions, eval_fraction=args.eval_fraction,
    )
    out = write_init(args.out, train, held_out, seed=args.seed, size=args.size,
                     overwrite=args.overwrite)
    counts_train = Counter(r["category"] for r in train)
    counts_eval = Counter(r["category"] for r in held_out)
    for category in sorted(counts_train | counts_eval):
        print(f"{category:10} train {counts_train[category]:5d}  eval {counts_eval[category]:4d}")
    print(f"{'total':10} train {len(train):5d}  eval {len(held_out):4d}  -> {out}")

    print("\n".join(instruction_style_lines(train + held_out)))
    if args.push_to_hub:
        print("pushed:", push_to_hub(out, args.push_to_hub))
    return 0


def cmd_build_dolly(args) -> int:
    topics = DEFAULT_TRIVIA_TOPICS
    if args.trivia_topics:
        topics = tuple(line.strip() for line in args.trivia_topics.read_text("utf-8").splitlines()
                       if line.strip() and not line.startswith("#"))
    report = build_dolly(args.source, args.out, parts=args.parts, seed=args.seed,
                         style=args.style, trivia_topics=topics, num_proc=args.num_proc,
                         overwrite=args.overwrite)
    print(f"{report['records_in']} records in")
    for step in report["steps"]:
        what = (f"removed {step['removed']:5d} {step.get('by_reason', '')}" if "removed" in step
                else f"changed {step['changed']:5d}")
        print(f"  {step['step']:28} {what}")
    for part in report["parts"]:
        print(f"  {part['name']:28} {part['records']:5d} records")
    print(f"{report['records_out']} records out -> {args.out}")
    return 0


def cmd_train(args) -> int:
    from qeu_utils.training.train import train

    config = resolve(args.config, args.profile, **cli_overrides(args.settings))
    summary = train(config)
    print(f"stage {config.stage.stage}: {summary['global_step']} steps, train loss "
          f"{summary['train_loss']:.4f} -> {summary['output_dir']}")
    if summary.get("resumed_from"):
        print(f"resumed from {summary['resumed_from']}")
    evaluation = summary.get("evaluation")
    if evaluation:
        before, after = (evaluation[k]["loss"]["overall"]["loss"] for k in ("before", "after"))
        print(f"held-out loss {before:.4f} -> {after:.4f} (see evaluation.md)")
    return 0


def cmd_analyze(args) -> int:
    result = analyze(args.model, args.adapter or [], args.out, labels=args.labels,
                     n_kanji=args.n_kanji, n_sentences=args.n_sentences, n_lens=args.n_lens,
                     n_words=args.n_words)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
    print(f"metrics, report and pictures in {args.out} ({len(result['summary'])} models)")
    return 0


def cmd_gate(args) -> int:
    # The command from the parsed options, so the report says how to remake it as typed or not.
    options = [("--n-kanji", args.n_kanji), ("--n-countries", args.n_countries),
               ("--n-loanwords", args.n_loanwords), ("--seed", args.seed)]
    command = shlex.join(["python", "-m", "qeu_utils", "gate", "--model", args.model, "--out",
                          str(args.out), *(str(x) for flag, value in options
                                           if value is not None for x in (flag, value))])
    summary = run_gate(args.model, args.out, n_kanji=args.n_kanji, n_countries=args.n_countries,
                       n_loanwords=args.n_loanwords, seed=args.seed, batch_size=args.batch_size,
                       overwrite=args.overwrite, command=command)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
    print(f"K = {summary['primary']['K_count']} of {summary['n_items']} items; items.jsonl, "
          f"summary.json, report.md and gate.png in {args.out}")
    return 0


def cmd_chat(args) -> int:
    model, tokenizer, label = chat.load_stage(args.run, args.stage)
    if args.prompt is not None:
        print(chat.reply(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens))
        return 0
    print(f"chatting with {label} of {args.run}; an empty line or Ctrl-D ends")
    chat.repl(model, tokenizer, max_new_tokens=args.max_new_tokens)
    return 0


def cmd_export(args) -> int:
    result = export(args.path, stage=args.stage, merged_dir=args.merged, gguf_file=args.gguf,
                    gguf_type=args.gguf_type, push_to_hub=args.push_to_hub,
                    private=args.private)
    for what, where in result.items():
        print(f"{what:10} {where}")
    return 0


def cmd_experiment_curriculum(args) -> int:
    settings = resolve_settings(
        args.profile, model=args.model, seeds=args.seeds, precision=args.precision,
        stage1_epochs=args.stage1_epochs, stage1_max_steps=args.stage1_max_steps,
        durability=args.durability, stage2_steps=args.stage2_steps,
        batch_size=args.batch_size, probes_per_kind=args.probes_per_kind,
        generate_per_kind=args.generate_per_kind, gate=args.gate,
        max_new_tokens=args.max_new_tokens, n_kanji=args.n_kanji,
        n_sentences=args.n_sentences, n_lens=args.n_lens, init_size=args.init_size,
        dolly_source=args.dolly_source, dolly_eval_records=args.dolly_eval_records,
        generation_batch_size=args.generation_batch_size)
    # The command line, so metrics.json says how the result was made: as typed when this
    # process was started as the CLI, else rebuilt from the parsed options.
    argv = sys.argv[1:] if "curriculum" in sys.argv else ["experiment", "curriculum"] + [
        part for key, value in vars(args).items()
        if value is not None and key not in ("func", "command", "experiment", "debug")
        for part in ["--" + key.replace("_", "-"),
                     *map(str, value if isinstance(value, list) else [value])]]
    command = shlex.join(["python", "-m", "qeu_utils", *argv])
    result = curriculum(args.out, settings, args.phase, command=command)
    if result is not None:
        print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
        print(f"{len(result['seeds'])} seed(s) -> {args.out}")
    return 0
