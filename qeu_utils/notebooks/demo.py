"""Execute the numbered notebooks in order and write a short report.

``run_notebooks()`` is what ``make demo`` and ``python -m qeu_utils demo`` call: every
``notebooks/NN_*.ipynb`` runs top to bottom through papermill with the ``notebooks:`` parameters
of a hardware profile (``cpu`` by default: small budgets for a CPU), the executed copies land in
``runs/<timestamp>/``, and ``report.md`` says what ran, how long it took, and the key metrics
each notebook recorded with ``record_metrics``.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest.mock import patch
from qeu_utils.training.profiles import load_profile
from qeu_utils.notebooks import stored

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_NAME = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")
NOTEBOOK_STEM = re.compile(r"^\d{2}_[\w-]+$")


def find_notebooks(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in numeric order; ``only`` keeps those whose stem starts with one of
    the given prefixes (``["00", "07_dolly"]``)."""
    found = sorted(
        (p for p in Path(notebook_dir).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name)),
        key=lambda p: (int(p.name[:2]), p.name),
    )
    if only:
        found = [p for p in found if any(p.stem.startswith(prefix) for prefix in only)]
        if not found:
            raise ValueError(f"No notebook in {notebook_dir} matches {only}.")
    return found


def demo_parameters(profile: str | Path = "cpu") -> dict:
    """The ``notebooks:`` section of a hardware profile: ``common`` plus one entry per
    notebook stem; every notebook also gets ``PROFILE`` (the profile's name)."""

    data = load_profile(profile)
    params = dict(data.notebooks or {})
    unknown = [k for k in params if k != "common" and not NOTEBOOK_STEM.match(k)]
    if unknown:
        raise ValueError(f"profile {profile}: notebooks: unknown entries {sorted(unknown)}")
    params["common"] = {"PROFILE": data.name, **(params.get("common") or {})}
    return params


def notebook_parameters(profile: dict, notebook: Path, run_dir: Path) -> dict:
    params = dict(profile.get("common") or {})
    params.update(profile.get(notebook.stem) or {})
    params["RUN_DIR"] = str(run_dir)
    return params


def store_outputs(executed: Path, target: Path) -> None:
    """Write an executed notebook over its source as it should be committed
    (``qeu_utils.notebooks.stored``: no injected parameters, no papermill timings, relative paths); a
    notebook that still has something a reader must not see is not written, and the error
    names each cell."""
    import nbformat

    nb = stored.clean(nbformat.read(executed, as_version=4), REPO_ROOT)
    nbformat.validator.normalize(nb)
    found = stored.problems(nb, target.name, stored.checkout_roots(REPO_ROOT))
    if found:
        raise ValueError(f"{target.name} not stored (the executed copy is {executed}):\n"
                         + "\n".join(found))
    nbformat.write(nb, target)


# An unattended run prints no live bars: tqdm (every library's, through its TQDM_ defaults),
# datasets and the Hub stay quiet, and Trainer prints one line per logging step
# (qeu_utils.training.train.plain_progress).
QUIET_RUN_ENV = {"TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                 "HF_HUB_DISABLE_PROGRESS_BARS": "1", "QEU_PROGRESS": "plain"}


def record_metrics(run_dir: str | Path, notebook: str, metrics: dict) -> None:
    """Called from a notebook: save the numbers the run report should show."""
    out = Path(run_dir) / "metrics" / f"{notebook}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def run_notebooks(
    notebook_dir: Path = REPO_ROOT / "notebooks",
    profile: str | Path = "cpu",
    run_dir: Path | None = None,
    only: list[str] | None = None,
    kernel_name: str = "python3",
    store: bool = False,
) -> Path:
    """Run the notebooks; return the path of ``report.md``. Stops at the first failure (later
    notebooks use earlier outputs), still writing the report, and raises ``RuntimeError``.
    ``store=True`` writes each executed notebook back over its source (``make notebooks``)."""
    import papermill

    notebooks = find_notebooks(notebook_dir, only)
    parameters = demo_parameters(profile)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(run_dir or REPO_ROOT / "runs" / stamp).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    results = []
    failure = None
    # The kernel inherits this process's environment.
    with patch.dict(os.environ, QUIET_RUN_ENV):
        for nb in notebooks:
            params = notebook_parameters(parameters, nb, run_dir)
            started = time.perf_counter()
            status = "ok"
            try:
                papermill.execute_notebook(
                    str(nb),
                    str(run_dir / nb.name),
                    parameters=params,
                    kernel_name=kernel_name,
                    cwd=str(nb.parent),
                    progress_bar=False,
                )
                if store:
                    store_outputs(run_dir / nb.name, nb)
            except Exception as err:  # noqa: BLE001 — reported, then re-raised below
                status = f"failed: {type(err).__name__}"
                failure = (nb.name, err)
            results.append((nb.stem, status, time.perf_counter() - started, params))
            if failure:
                break
    report = write_report(run_dir, results, profile)
    if failure:
        name, err = failure
        raise RuntimeError(
            f"Notebook {name} failed; executed copy and report in {run_dir}:\n{err}"
        ) from err
    return report


def write_report(run_dir: Path, results: list, profile: str | Path) -> Path:
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"Profile: `{profile}`. Executed notebooks are in this folder.",
        "",
        "| notebook | status | seconds |",
        "|---|---|---:|",
    ]
    lines += [f"| {stem} | {status} | {secs:.1f} |" for stem, status, secs, _ in results]
    for stem, _, _, params in results:
        metrics_file = run_dir / "metrics" / f"{stem}.json"
        shown = {k: v for k, v in params.items() if k != "RUN_DIR"}
        lines += ["", f"## {stem}", "", f"Parameters: `{json.dumps(shown, ensure_ascii=False)}`"]
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            lines += ["", "| metric | value |", "|---|---|"]
            lines += [f"| {key} | {_fmt(value)} |" for key, value in metrics.items()]
    report = run_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
