"""Command line: ``python -m qeu_utils <command>``: the parser, ``--debug`` anywhere, errors as
one line (a traceback with ``--debug``), Ctrl-C as exit status 130. The commands themselves
are in ``cli.commands``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qeu_utils.builders.dolly import DEFAULT_SOURCE
from qeu_utils.cli.commands import (
    cmd_analyze,
    cmd_build_dolly,
    cmd_build_init,
    cmd_chat,
    cmd_demo,
    cmd_experiment_curriculum,
    cmd_export,
    cmd_gate,
    cmd_models_fetch,
    cmd_models_list,
    cmd_notebooks_set_repo,
    cmd_train,
    parse_proportions,
    parse_size,
)
from qeu_utils.core.log import debug_requested, setup_logging
from qeu_utils.model.models import ModelNotAvailableError
from qeu_utils.notebooks.demo import REPO_ROOT


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
    fetch.add_argument("name", help="e.g. gemma3-270m")
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
    analyze.add_argument("--model", default="gemma3-270m")
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
        "experiment", help="experiments: curriculum = base, B and two controls over seeds")
    experiment_cmds = experiment.add_subparsers(dest="experiment", required=True,
                                                metavar="EXPERIMENT")
    cur = experiment_cmds.add_parser(
        "curriculum", help="base, stage 1 (B), changed pairs deranged (C-changed), the style "
        "rule swapped (C-swap); measured after stage 1")
    cur.add_argument("--profile", default="cpu",
                     help="cpu, t4, l4, a100 or a profile YAML: budgets and model (default cpu)")
    cur.add_argument("--out", type=Path, required=True, help="experiment directory (resumable)")
    cur.add_argument("--phase", nargs="+", choices=["prepare", "run", "score"],
                     default=["prepare", "run", "score"],
                     help="prepare (needs the text tools), run (trains; GPU), score; default all")
    cur.add_argument("--seeds", type=int, nargs="+", help="default: the profile's")
    cur.add_argument("--model", help="override the profile's model (alias, Hub id or dir)")
    cur.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"],
                     help="default: fp32 for the cpu profile everywhere, else the profile's")
    cur.add_argument("--stage1-epochs", type=float)
    cur.add_argument("--stage1-max-steps", type=int, help="cap stage 1 (tests, smoke runs)")
    cur.add_argument("--durability", action="store_true", default=None,
                     help="after the stage-1 measurement, train stage 2 and measure again")
    cur.add_argument("--stage2-steps", type=int, help="stage 2's steps (with --durability)")
    cur.add_argument("--batch-size", type=int)
    cur.add_argument("--probes-per-kind", type=int)
    cur.add_argument("--generate-per-kind", type=int,
                     help="generated answers per kind of item (kanji, country, loanword, style)")
    cur.add_argument("--max-new-tokens", type=int, help="how long a generated answer may grow")
    cur.add_argument("--gate", help="the knowledge gate's result folder (default "
                     "results/gate-<model> when it exists): strata and testability")
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
