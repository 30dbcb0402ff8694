"""``python -m qeu_utils …``: the command line lives in ``qeu_utils.cli``."""

from qeu_utils.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
