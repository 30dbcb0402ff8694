"""Command line: ``python -m qeu_utils <command>``.

Each command is a thin wrapper over a function of the package, so everything the CLI does can
also be done from a notebook or a script.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path

from qeu_utils.analysis.analyze import analyze
from qeu_utils.analysis.gate import run_gate
from qeu_utils.builders.dolly import DEFAULT_SOURCE, DEFAULT_TRIVIA_TOPICS, build_dolly
from qeu_utils.builders.mix import (
    DEFAULT_PROPORTIONS,
    build_init,
    instruction_style_lines,
    push_to_hub,
    write_init,
)
from qeu_utils.core.log import debug_requested, setup_logging
from qeu_utils.experiment.pipeline import curriculum
from qeu_utils.experiment.settings import resolve_settings
from qeu_utils.model.models import ALIASES, ModelNotAvailableError, resolve_model
from qeu_utils.notebooks.demo import REPO_ROOT, run_notebooks
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
        args.profile, model=args.model, seeds=args.seeds, conditions=args.conditions,
        precision=args.precision, stage1_epochs=args.stage1_epochs,
        stage1_max_steps=args.stage1_max_steps, stage2_steps=args.stage2_steps,
        batch_size=args.batch_size, probes_per_kind=args.probes_per_kind,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qeu_utils",
        description="QEU initialization curriculum for Japanese LLM fine-tuning.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="print full tracebacks and debug logs (also: QEU_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list model aliases, provision a model offline")
    models_cmds = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = models_cmds.add_parser(
        "fetch", help="provision a model (alias, Hub id, dir or .gguf) and print its directory"
    )
    fetch.add_argument("name", help="e.g. smollm2-135m-instruct")
    fetch.set_defaults(func=cmd_models_fetch)
    models_cmds.add_parser("list", help="list the model aliases").set_defaults(
        func=cmd_models_list
    )

    build = commands.add_parser("build", help="build datasets (init: the initialization dataset)")
    build_cmds = build.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    init = build_cmds.add_parser("init", help="the initialization dataset (about 300 records)")
    init.add_argument("--out", type=Path, required=True, help="output directory")
    init.add_argument("--size", type=parse_size, default=300,
                      help="number of records (train + eval), or 'all' (default 300)")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--categories", nargs="+", metavar="CATEGORY",
                      help="style katakana country kanji food (default: all)")
    init.add_argument("--proportions", type=parse_proportions,
                      help="shares per category, e.g. style=0.5,kanji=0.2 (others keep defaults)")
    init.add_argument("--eval-fraction", type=float, default=0.1,
                      help="share of items held out for eval (default 0.1)")
    init.add_argument("--overwrite", action="store_true", help="replace an existing build")
    init.add_argument("--push-to-hub", metavar="REPO",
                      help="also upload to this Hub dataset repo (token from HF_TOKEN)")
    init.set_defaults(func=cmd_build_init)

    dolly = build_cmds.add_parser("dolly", help="stage-2 data: Japanese Dolly revised the QEU way")
    dolly.add_argument("--source", default=DEFAULT_SOURCE,
                       help=f"Hub id or local .json/.jsonl/.parquet (default {DEFAULT_SOURCE})")
    dolly.add_argument("--out", type=Path, required=True, help="output directory")
    dolly.add_argument("--parts", type=int, default=4, help="number of parts (default 4)")
    dolly.add_argument("--seed", type=int, default=0)
    dolly.add_argument("--style", choices=["keep", "plain", "polite"], default="keep",
                       help="convert outputs to 常体 (plain) or 敬体 (polite); default keep")
    dolly.add_argument("--trivia-topics", type=Path, metavar="FILE",
                       help="file with one trivia topic per line (replaces the default list)")
    dolly.add_argument("--num-proc", type=int, default=None, help="worker processes for map")
    dolly.add_argument("--overwrite", action="store_true", help="replace an existing build")
    dolly.set_defaults(func=cmd_build_dolly)

    train = commands.add_parser(
        "train", help="LoRA fine-tuning of one stage from a config",
        description="Train one stage. Any setting overrides the config by its upstream name: "
                    "a field of TRL's SFTConfig (--learning_rate 3e-4, --num_train_epochs 3, "
                    "--max_steps 20), TRL's ModelConfig (--model_name_or_path M, --lora_r 8) or "
                    "the stage's own (--dataset DIR, --output_dir DIR, --init_from DIR, "
                    "--chain merge, --precision fp32).")
    train.add_argument("--config", required=True,
                       help="a packaged config (stage1, stage2, stage3) or a YAML file")
    train.add_argument("--profile", default=None,
                       help="also apply a hardware profile's settings (cpu, t4, l4, a100)")
    train.set_defaults(func=cmd_train, takes_settings=True)

    analyze = commands.add_parser("analyze", help="embedding analysis of a model and its stages")
    analyze.add_argument("--model", default="smollm2-135m-instruct")
    analyze.add_argument("--adapter", nargs="+", metavar="DIR",
                         help="stage output directories (or PEFT adapters), in order")
    analyze.add_argument("--labels", nargs="+", help="names for base + adapters in the report")
    analyze.add_argument("--out", type=Path, required=True)
    analyze.add_argument("--n-kanji", type=int, default=150)
    analyze.add_argument("--n-sentences", type=int, default=200)
    analyze.add_argument("--n-lens", type=int, default=50)
    analyze.add_argument("--n-words", type=int, default=None,
                         help="a sample of N country names and loanwords (default all)")
    analyze.set_defaults(func=cmd_analyze)

    gate = commands.add_parser(
        "gate", help="knowledge gate: what a base model knows from a Chinese vs a Japanese prompt")
    gate.add_argument("--model", required=True, help="alias, Hub id or directory of a base model")
    gate.add_argument("--out", type=Path, required=True, help="output directory")
    gate.add_argument("--n-kanji", type=int, default=300, help="kanji (default 300; 0: none)")
    gate.add_argument("--n-countries", type=int, default=100, help="countries (default 100)")
    gate.add_argument("--n-loanwords", type=int, default=100, help="loanwords (default 100)")
    gate.add_argument("--seed", type=int, default=0)
    gate.add_argument("--batch-size", type=int, default=16)
    gate.add_argument("--overwrite", action="store_true", help="replace an existing result")
    gate.set_defaults(func=cmd_gate)

    experiment = commands.add_parser(
        "experiment", help="experiments: curriculum = conditions A/B/C over seeds")
    experiment_cmds = experiment.add_subparsers(dest="experiment", required=True,
                                                metavar="EXPERIMENT")
    cur = experiment_cmds.add_parser(
        "curriculum", help="stage 2 alone (A), after stage 1 (B), after link-broken stage 1 (C)")
    cur.add_argument("--profile", default="cpu",
                     help="cpu, t4, l4, a100 or a profile YAML: budgets and model (default cpu)")
    cur.add_argument("--out", type=Path, required=True, help="experiment directory (resumable)")
    cur.add_argument("--phase", nargs="+", choices=["prepare", "run", "score"],
                     default=["prepare", "run", "score"],
                     help="prepare (needs the text tools), run (trains; GPU), score; default all")
    cur.add_argument("--seeds", type=int, nargs="+", help="default: the profile's")
    cur.add_argument("--conditions", nargs="+", choices=["A", "B", "C", "D"],
                     help="default A B C (+ D where the profile asks for extra stage-2 steps)")
    cur.add_argument("--model", help="override the profile's model (alias, Hub id or dir)")
    cur.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"],
                     help="default: fp32 for the cpu profile everywhere, else the profile's")
    cur.add_argument("--stage1-epochs", type=float)
    cur.add_argument("--stage1-max-steps", type=int, help="cap stage 1 (tests, smoke runs)")
    cur.add_argument("--stage2-steps", type=int)
    cur.add_argument("--batch-size", type=int)
    cur.add_argument("--probes-per-kind", type=int)
    cur.add_argument("--max-new-tokens", type=int)
    cur.add_argument("--generation-batch-size", type=int)
    cur.add_argument("--n-kanji", type=int)
    cur.add_argument("--n-sentences", type=int)
    cur.add_argument("--n-lens", type=int)
    cur.add_argument("--init-size", type=int, help="initialization dataset size (default 300)")
    cur.add_argument("--dolly-source", help="'sample' (shipped), a Hub id or a local file")
    cur.add_argument("--dolly-eval-records", type=int,
                     help="held-out Dolly loss on the first N records of part 4 (default all)")
    cur.set_defaults(func=cmd_experiment_curriculum)

    chat = commands.add_parser("chat", help="talk to a stage of a run (or its base model)")
    chat.add_argument("--run", type=Path, required=True, help="the run directory (RUN_DIR)")
    chat.add_argument("--stage", type=int, default=None,
                      help="N: RUN_DIR/stageN; 0 or none: the base model")
    chat.add_argument("--prompt", help="answer this one prompt and exit (default: interactive)")
    chat.add_argument("--max-new-tokens", type=int, default=64)
    chat.set_defaults(func=cmd_chat)

    export = commands.add_parser(
        "export", help="adapter + model card, merged model, GGUF, Hub upload (when asked)")
    export.add_argument("path", type=Path, metavar="RUN_DIR_OR_STAGE_DIR")
    export.add_argument("--stage", type=int, help="with a RUN_DIR: export RUN_DIR/stageN")
    export.add_argument("--merged", type=Path, metavar="DIR",
                        help="also write the merged 16-bit model (safetensors) here")
    export.add_argument("--gguf", type=Path, metavar="FILE.gguf", help="also write a GGUF file")
    export.add_argument("--gguf-type", choices=["f16", "f32", "q8_0"], default="f16")
    export.add_argument("--push-to-hub", metavar="REPO",
                        help="upload the adapter and card to this Hub repo (token from HF_TOKEN)")
    export.add_argument("--private", action="store_true", help="create the Hub repo private")
    export.set_defaults(func=cmd_export)

    notebooks = commands.add_parser("notebooks", help="maintain the notebooks' setup cells")
    nb_cmds = notebooks.add_subparsers(dest="notebooks_command", required=True, metavar="ACTION")
    set_repo = nb_cmds.add_parser(
        "set-repo", help="point every setup cell and Colab badge at a repository (and ref)")
    set_repo.add_argument("url", nargs="?", help="https git URL (default: pyproject.toml's)")
    set_repo.add_argument("--ref", help="branch, tag or commit (default: pyproject.toml's)")
    set_repo.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    set_repo.set_defaults(func=cmd_notebooks_set_repo)

    demo = commands.add_parser(
        "demo", help="execute the numbered notebooks in order and write runs/<time>/report.md"
    )
    demo.add_argument("--notebooks", type=Path, default=REPO_ROOT / "notebooks")
    demo.add_argument(
        "--profile", default="cpu",
        help="hardware profile whose notebooks: section gives the parameters (default: cpu)",
    )
    demo.add_argument("--out", type=Path, default=None, help="run directory (default runs/<time>)")
    demo.add_argument("--only", nargs="+", default=None, metavar="PREFIX",
                      help="run only notebooks whose name starts with one of these")
    demo.add_argument("--store", action="store_true",
                      help="write the executed notebooks back over notebooks/ (make notebooks)")
    demo.set_defaults(func=cmd_demo)
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--debug`` after any subcommand too (``train --config stage1 --debug``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                # SUPPRESS: a subcommand without the flag keeps the top-level value.
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="print full tracebacks and debug logs (also: QEU_DEBUG=1)")
                _debug_everywhere(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_settings", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.settings = extra
    debug = args.debug or debug_requested()
    setup_logging(debug)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        # What was written is whole (atomic writes); a rerun resumes or refuses, never mixes.
        print("interrupted", file=sys.stderr)
        return 130
    except (ModelNotAvailableError, ValueError, OSError, RuntimeError, ImportError) as err:
        if debug:
            import traceback

            traceback.print_exc()
            print(f"error: {err}", file=sys.stderr)
        else:
            print(f"error: {err} (run with --debug for the traceback)", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
