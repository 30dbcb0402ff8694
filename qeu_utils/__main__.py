"""Command line: ``python -m qeu_utils <command>``.

Each command is a thin wrapper over a function of the package, so everything the CLI does can
also be done from a notebook or a script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_models_fetch(args) -> int:
    from qeu_utils.models import resolve_model

    print(resolve_model(args.name))
    return 0


def cmd_models_list(args) -> int:
    from qeu_utils.models import ALIASES

    for alias in ALIASES.values():
        print(f"{alias.name:24} {alias.description}")
    return 0


def cmd_demo(args) -> int:
    from qeu_utils.demo import run_notebooks

    report = run_notebooks(
        notebook_dir=args.notebooks,
        profile_path=args.profile,
        run_dir=args.out,
        only=args.only,
    )
    print(report.read_text(encoding="utf-8"))
    print(f"Report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from qeu_utils.demo import REPO_ROOT

    parser = argparse.ArgumentParser(
        prog="python -m qeu_utils",
        description="QEU initialization curriculum for Japanese LLM fine-tuning.",
    )
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

    demo = commands.add_parser(
        "demo", help="execute the numbered notebooks in order and write runs/<time>/report.md"
    )
    demo.add_argument("--notebooks", type=Path, default=REPO_ROOT / "notebooks")
    demo.add_argument(
        "--profile", type=Path, default=REPO_ROOT / "configs" / "demo_cpu.yaml",
        help="YAML with the notebook parameters (default: small CPU settings)",
    )
    demo.add_argument("--out", type=Path, default=None, help="run directory (default runs/<time>)")
    demo.add_argument("--only", nargs="+", default=None, metavar="PREFIX",
                      help="run only notebooks whose name starts with one of these")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from qeu_utils.models import ModelNotAvailableError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelNotAvailableError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
