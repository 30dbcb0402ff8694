"""What a committed notebook may contain: the outputs of a run, and no trace of that run.

``make notebooks`` executes each notebook with papermill and stores it back over its source.
A reader on GitHub sees those outputs, and a reader on Colab presses "Run all" on that very
file, so before it is written:

- papermill's ``injected-parameters`` cell goes (its values were the CPU demo's, and its
  ``RUN_DIR`` a path of the machine that ran it): the ``parameters`` cell keeps the user's
  defaults, and ``None`` there means the hardware's profile;
- papermill's metadata goes and the code cells are numbered 1, 2, 3… as one clean run;
- paths under the checkout are written relative to it (``runs/notebooks/stage1``) and paths
  under the home directory start with ``~``;
- :func:`problems` must find nothing — machine paths, U+FFFD, progress bars or speed figures,
  widgets, over-wide tables, an oversized file — or storing stops, naming each cell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

MAX_BYTES = 500_000
MAX_TABLE_WIDTH = 120
INJECTED_TAG = "injected-parameters"

# Absolute paths of a machine: temp and home folders, an installed package's location.
_MACHINE_PATH = re.compile(r"(?<![\w~.])/(?:tmp|home|root|Users)/|site-packages|\S/\.venv/")
# tqdm's rate figures ("2.47it/s]", "1.86s/it]", "135Mbyte/s]") and Trainer's HTML progress.
_SPEED = re.compile(r"\d(?:it/s|s/it|[kMG]?B/s|[kMG]?byte/s)\]")
_HTML_PROGRESS = re.compile(r"<progress[\s>]")
# A printed table row: at least three gaps of two or more spaces between columns.
_TABLE_ROW = re.compile(r"\S(?: {2,}\S+){3,}")


def checkout_roots(repo_root: Path) -> tuple[str, ...]:
    """The checkout's parent folder, a path of this machine that no committed file may name
    (none when the checkout sits at the top of the file system)."""
    parent = Path(repo_root).resolve().parent
    return (str(parent),) if parent != parent.parent else ()


def machine_paths(text: str, extra_roots: tuple[str, ...] = ()) -> list[str]:
    """The absolute machine paths in ``text`` (each match with a little context)."""
    found = [text[max(0, m.start() - 30):m.end() + 30] for m in _MACHINE_PATH.finditer(text)]
    for root in extra_roots:  # as a path's start: "/w" must not match "…org/wiki/"
        for m in re.finditer(r"(?<![\w.~-])" + re.escape(root.rstrip("/")) + "/", text):
            found.append(text[max(0, m.start() - 10):m.end() + 30])
    return found


def _texts(output: dict) -> list[tuple[str, str]]:
    """``(kind, text)`` for each textual part of one output (images left out)."""
    if output.get("output_type") == "stream":
        return [("stream", _join(output.get("text", "")))]
    if output.get("output_type") == "error":
        return [("error", "\n".join(output.get("traceback", [])))]
    return [(kind, _join(value)) for kind, value in output.get("data", {}).items()
            if not kind.startswith("image/")]


def _join(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def problems(nb: dict, name: str = "notebook", extra_roots: tuple[str, ...] = ()) -> list[str]:
    """What keeps ``nb`` (a notebook as JSON/nbformat) from being committed, one line each
    naming the cell; empty when it is fit to store. ``extra_roots``: more absolute paths that
    must not appear (the checkout's parent folder)."""
    found = []
    size = len(json.dumps(nb, ensure_ascii=False, indent=1).encode("utf-8"))
    if size > MAX_BYTES:
        found.append(f"{name}: {size:,} bytes, over {MAX_BYTES:,}")
    for index, cell in enumerate(nb["cells"]):
        where = f"{name} cell {index}"
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags:
            found.append(f"{where}: papermill's injected-parameters cell")
        if cell.get("cell_type") != "code":
            continue
        for path in machine_paths(_join(cell.get("source", "")), extra_roots):
            found.append(f"{where}: machine path in the source: {path!r}")
        for output in cell.get("outputs", []):
            for kind, text in _texts(output):
                if kind == "application/vnd.jupyter.widget-view+json":
                    found.append(f"{where}: a widget")
                    continue
                for path in machine_paths(text, extra_roots):
                    found.append(f"{where}: machine path: {path!r}")
                if "\ufffd" in text:
                    cut = text[:text.index("\ufffd") + 1][-31:]
                    found.append(f"{where}: U+FFFD (a cut character): {cut!r}")
                if speed := _SPEED.search(text):
                    found.append(f"{where}: a progress bar's speed: {speed.group(0)!r}")
                if _HTML_PROGRESS.search(text):
                    found.append(f"{where}: an HTML progress bar")
                if kind in ("stream", "text/plain"):
                    wide = [line for line in text.splitlines()
                            if len(line) > MAX_TABLE_WIDTH and _TABLE_ROW.search(line)]
                    if wide:
                        found.append(f"{where}: a table {len(wide[0])} characters wide "
                                     f"(at most {MAX_TABLE_WIDTH}): {wide[0][:60]!r}…")
    return found


def relative_paths(text: str, repo_root: Path, home: Path) -> str:
    """``text`` with paths under ``repo_root`` made relative to it and ``home`` shown as ``~``."""
    text = re.sub(re.escape(str(repo_root)) + r"/", "", text)
    text = re.sub(re.escape(str(repo_root)) + r"\b", ".", text)
    return re.sub(re.escape(str(home)) + r"/", "~/", text) if str(home) != "/" else text


def clean(nb, repo_root: Path, home: Path | None = None):
    """``nb`` (an nbformat notebook) as it should be committed: no injected-parameters cell,
    no papermill metadata, code cells numbered from 1, paths relative (see the module)."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    home = Path.home() if home is None else home
    # A streamed answer (TextStreamer) arrives as one output per token: join them.
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    nb.metadata.pop("papermill", None)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        for output in cell.outputs:
            if "execution_count" in output:
                output["execution_count"] = count
            if output.get("output_type") == "stream":
                output["text"] = relative_paths(_join(output["text"]), repo_root, home)
            for kind, value in output.get("data", {}).items():
                if isinstance(value, (str, list)) and not kind.startswith("image/"):
                    output["data"][kind] = relative_paths(_join(value), repo_root, home)
    return nb
