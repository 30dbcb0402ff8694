"""What the first cell of every notebook does, and the command that keeps those cells in step.

Every notebook has the same setup cell right after its parameters cell (tag ``qeu-setup``).
It installs ``qeu_utils`` when it is not importable (a *non-editable* ``pip install`` from git:
an editable install is registered through a ``.pth`` file that a running kernel never reads),
then calls :func:`start`, which

- on Colab, optionally puts ``RUN_DIR`` on Google Drive, so that data and adapters survive
  between the notebooks' separate runtimes;
- prints the hardware report (device, GPU, compute capability, memory, precision, profile);
- reads or writes ``RUN_DIR/run.json`` (model, profile, seed): the first notebook to run in a
  ``RUN_DIR`` writes it, later ones follow it and stop on a mismatch that names both sides.

``python -m qeu_utils notebooks set-repo URL [--ref REF]`` rewrites the install line of every
notebook's setup cell and the README's Open-in-Colab badges; the URL and ref live in
``pyproject.toml`` (``[tool.qeu_utils]``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from qeu_utils.training.profiles import Profile
import warnings
from qeu_utils.core.atomic import atomic_write_json
from qeu_utils.training.profiles import choose_profile, load_profile
import qeu_utils
from qeu_utils.core.log import setup_logging
from qeu_utils.training.profiles import hardware_markdown, hardware_report, load_profile

SETUP_TAG = "qeu-setup"
RUN_FILE = "run.json"
DRIVE_ROOT = Path("/content/drive/MyDrive/qeu_utils")


class RunMismatchError(ValueError):
    """A notebook's MODEL/PROFILE disagrees with what ``RUN_DIR/run.json`` recorded."""


def in_colab() -> bool:
    return "google.colab" in sys.modules


def _mount_drive(run_dir: Path) -> Path:
    from google.colab import drive  # only on Colab

    drive.mount("/content/drive")
    target = DRIVE_ROOT / run_dir.name
    print(f"RUN_DIR on Google Drive: {target}")
    return target


def read_run(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunMismatchError(f"{path}: not valid JSON ({err}); fix or delete it") from err


def resolve_run(run_dir: str | os.PathLike, notebook: str, *, model: str | None = None,
                profile: str | None = None, seed: int | None = None) -> dict:
    """The run's settings: those in ``run.json`` when it exists (a disagreeing ``model`` or
    ``profile`` is an error naming both and the notebook that set them), else the given ones
    (``None``: the chosen profile's model, profile and seed 0), written to ``run.json``."""

    run_dir = Path(run_dir)
    recorded = read_run(run_dir)
    if recorded is not None:
        asked = {"model": model, "profile": profile, "seed": seed}
        for key, value in asked.items():
            if value is not None and value != recorded.get(key):
                raise RunMismatchError(
                    f"{run_dir / RUN_FILE} says {key} = {recorded.get(key)!r} (written by "
                    f"notebook {recorded.get('written_by')}), but {notebook} asks for "
                    f"{key} = {value!r}. Set {key.upper()} = None to follow the run, or use a "
                    "new RUN_DIR for a new run."
                )
        return recorded
    profile = profile or choose_profile()
    run = {
        "model": model or load_profile(profile).model,
        "profile": profile,
        "seed": 0 if seed is None else seed,
        "written_by": notebook,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / RUN_FILE, run)
    return run


def package_origin() -> str:
    """``"source checkout"`` when ``qeu_utils`` is imported from a clone of the repository
    (editable install or the clone on ``sys.path``), else ``"installed"``: what a reader needs,
    without the path of the machine."""

    checkout = Path(qeu_utils.__file__).resolve().parent.parent
    return "source checkout" if (checkout / "pyproject.toml").is_file() else "installed"


def start(run_dir: str | os.PathLike, notebook: str, *, model: str | None = None,
          profile: str | None = None, seed: int | None = None,
          use_drive: bool = False) -> tuple[Path, str, Profile]:
    """Set up a notebook: ``(RUN_DIR, MODEL, profile)``, after printing the hardware report.
    The library's log messages (progress of long steps, a run moved aside) show below the
    cells that cause them."""

    setup_logging()

    # Without ipywidgets, tqdm.auto falls back to text bars (no widget state in the stored
    # notebooks) and says so once per kernel; the fallback is what we want.
    warnings.filterwarnings("ignore", message="IProgress not found")
    # raised inside transformers/PEFT on every training run, not by the notebooks' calls
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    run_dir = Path(run_dir)
    if in_colab():
        print("Colab runtime detected.")
        if use_drive:
            run_dir = _mount_drive(run_dir)
    elif use_drive:
        print("USE_DRIVE is only for Colab; RUN_DIR stays", run_dir)
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    run = resolve_run(run_dir, notebook, model=model, profile=profile, seed=seed)

    print(f"qeu_utils {qeu_utils.__version__} ({package_origin()})")
    print(hardware_markdown(hardware_report(model=run["model"])))
    print(f"run: {run_dir} | model {run['model']} | profile {run['profile']} | seed "
          f"{run['seed']} (run.json written by {run['written_by']})")
    return run_dir, run["model"], load_profile(run["profile"])


# --- keeping every notebook's setup cell (and the README's badges) in step --------------------

SETUP_SOURCE = '''\
# Setup: the same cell in every notebook (`python -m qeu_utils notebooks set-repo` rewrites it).
QEU_INSTALL = "qeu_utils @ git+{url}@{ref}"
import importlib, subprocess, sys
try:
    import qeu_utils.notebooks.session  # noqa: F401  (a clone on sys.path is not an installed package)
except ImportError:
    # Non-editable: a running kernel never sees an editable install's .pth file.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", QEU_INSTALL], check=True)
    sys.modules.pop("qeu_utils", None)
    importlib.invalidate_caches()
from qeu_utils.notebooks.session import start

RUN_DIR, MODEL, PROFILE = start(RUN_DIR, "{notebook}", model=MODEL, profile=PROFILE,
                                use_drive=USE_DRIVE)
'''


def repo_settings(pyproject: Path) -> tuple[str, str]:
    """``repo_url`` and ``ref`` from pyproject.toml's ``[tool.qeu_utils]`` (one place)."""
    text = pyproject.read_text(encoding="utf-8")
    found = dict(re.findall(r'(?m)^(repo_url|ref) = "(.*)"$', text))
    if set(found) != {"repo_url", "ref"}:
        raise ValueError(f"{pyproject}: no [tool.qeu_utils] repo_url / ref")
    return found["repo_url"], found["ref"]


def setup_source(url: str, ref: str, notebook: str) -> list[str]:
    text = SETUP_SOURCE.format(url=url, ref=ref, notebook=notebook)
    return text.splitlines(keepends=True)[:-1] + [text.splitlines()[-1]]


def colab_badge(url: str, ref: str, notebook: str) -> str:
    path = re.sub(r"^https://github\.com/", "", url.removesuffix(".git"))
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/{ref}/notebooks/{notebook})")


def _setup_cell(nb: dict, path: Path) -> dict:
    cells = [c for c in nb["cells"] if SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: expected one cell tagged {SETUP_TAG!r}, found {len(cells)}")
    return cells[0]


def set_repo(repo_root: str | os.PathLike, url: str | None = None, ref: str | None = None,
             ) -> list[Path]:
    """Write ``url``/``ref`` (default: those in pyproject.toml) into pyproject.toml, every
    notebook's setup cell and the README's badges; return the files changed."""
    root = Path(repo_root)
    pyproject = root / "pyproject.toml"
    old_url, old_ref = repo_settings(pyproject)
    url, ref = url or old_url, ref or old_ref
    if not re.match(r"^https://\S+$", url):
        raise ValueError(f"repository URL must be https://…, got {url!r}")
    changed = []
    text = pyproject.read_text(encoding="utf-8")
    new = re.sub(r'(?m)^repo_url = ".*"$', f'repo_url = "{url}"', text)
    new = re.sub(r'(?m)^ref = ".*"$', f'ref = "{ref}"', new)
    if new != text:
        pyproject.write_text(new, encoding="utf-8")
        changed.append(pyproject)
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = _setup_cell(nb, path)
        source = setup_source(url, ref, path.stem)
        if cell["source"] != source:
            cell["source"] = source
            path.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
            changed.append(path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*/notebooks/([\w.-]+\.ipynb)\)",
                 lambda m: colab_badge(url, ref, m.group(1)), text)
    if new != text:
        readme.write_text(new, encoding="utf-8")
        changed.append(readme)
    return changed
