"""Logging in one place: each module logs to ``logging.getLogger(__name__)``; the CLI (or a
notebook) calls ``setup_logging`` once. ``--debug`` or ``QEU_DEBUG=1`` shows debug messages
and makes the CLI print full tracebacks."""

from __future__ import annotations

import logging
import os
import sys


def debug_requested() -> bool:
    return os.environ.get("QEU_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (notebooks and pytest replace it after setup)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(debug: bool | None = None) -> None:
    """INFO (DEBUG with ``debug``) messages of ``qeu_utils.*`` to stderr, once; other
    libraries keep their own settings."""
    if debug is None:
        debug = debug_requested()
    logger = logging.getLogger("qeu_utils")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    # One handler of ours, so a second call does not print every line twice.
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def progress(iterable, label, total: int | None = None):
    """``iterable`` with a tqdm bar when ``label`` is true (a string is the bar's label): long
    evaluations and analyses run in the background, and their logs should say where they are."""
    if not label:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=label if isinstance(label, str) else None,
                mininterval=5)
