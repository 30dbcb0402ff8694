import json
from pathlib import Path

import nbformat
import pytest

from qeu_utils.notebooks import demo

REPO = Path(__file__).resolve().parent.parent


def _notebook(path: Path, *sources: str, params: str = "RUN_DIR = '.'") -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    return path


def test_find_notebooks_in_numeric_order(tmp_path):
    for name in ["10_analysis.ipynb", "02_b.ipynb", "00_setup.ipynb", "notes.ipynb", "1_x.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in demo.find_notebooks(tmp_path)] == [
        "00_setup.ipynb", "02_b.ipynb", "10_analysis.ipynb"]
    assert [p.name for p in demo.find_notebooks(tmp_path, ["02", "10"])] == [
        "02_b.ipynb", "10_analysis.ipynb"]
    with pytest.raises(ValueError, match=r"No notebook in .* matches \['99'\]"):
        demo.find_notebooks(tmp_path, ["99"])


def _profile(tmp_path: Path, notebooks: str) -> Path:
    """The packaged cpu profile with another ``notebooks:`` section."""
    from qeu_utils.core.resources import profile_path

    text = profile_path("cpu").read_text(encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(text[: text.index("\nnotebooks:")] + "\nnotebooks:\n" + notebooks,
                    encoding="utf-8")
    return path


def test_profile_merges_common_and_notebook_parameters(tmp_path):
    profile = _profile(tmp_path, "  common: {MODEL: tiny-random, EPOCHS: 1}\n  01_a: {EPOCHS: 2}\n")
    params = demo.notebook_parameters(demo.demo_parameters(profile), Path("01_a.ipynb"), tmp_path)
    assert params == {"PROFILE": "cpu", "MODEL": "tiny-random", "EPOCHS": 2,
                      "RUN_DIR": str(tmp_path)}


def test_profile_with_unknown_notebook_entries_is_rejected(tmp_path):
    profile = _profile(tmp_path, "  comon: {}\n")
    with pytest.raises(ValueError, match=r"notebooks: unknown entries \['comon'\]"):
        demo.demo_parameters(profile)


def test_the_shipped_cpu_profile_names_only_existing_notebooks():
    params = demo.demo_parameters("cpu")
    stems = {p.stem for p in demo.find_notebooks(REPO / "notebooks")}
    assert set(params) - {"common"} <= stems
    assert params["common"] == {"PROFILE": "cpu", "MODEL": "gemma3-270m"}


def test_run_writes_executed_copies_metrics_and_report(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_first.ipynb",
              "from qeu_utils.notebooks.demo import record_metrics\n"
              "record_metrics(RUN_DIR, '00_first', {'answer': 6 * 7, 'loss': 0.123456})")
    _notebook(nbs / "01_second.ipynb", "x = 1")
    profile = _profile(tmp_path, "  common: {}\n")
    report = demo.run_notebooks(nbs, profile, run_dir=tmp_path / "run")
    text = report.read_text()
    assert "| 00_first | ok |" in text and "| 01_second | ok |" in text
    assert "| answer | 42 |" in text and "| loss | 0.1235 |" in text
    assert (tmp_path / "run" / "00_first.ipynb").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics" / "00_first.json").read_text())
    assert metrics == {"answer": 42, "loss": 0.123456}


def test_a_failing_notebook_stops_the_run_and_is_reported(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_broken.ipynb", "raise ValueError('boom')")
    _notebook(nbs / "01_never.ipynb", "x = 1")
    profile = _profile(tmp_path, "  common: {}\n")
    with pytest.raises(RuntimeError, match="Notebook 00_broken.ipynb failed"):
        demo.run_notebooks(nbs, profile, run_dir=tmp_path / "run")
    text = (tmp_path / "run" / "report.md").read_text()
    assert "| 00_broken | failed: PapermillExecutionError |" in text
    assert "01_never" not in text
    assert (tmp_path / "run" / "00_broken.ipynb").is_file()  # kept for reading the error


# The cpu profile's notebook budgets (`make demo`, `make notebooks`) take ~19 minutes on 2
# cores; CI runs every cell of the series on the same model at a few steps each. The GGUF
# export is left to tests/test_export.py and tests/test_wheel.py, which run it anyway.
CI_BUDGET = """\
  common:
    MODEL: smollm2-135m-instruct
  00_setup: {DEVICE: cpu, MAX_NEW_TOKENS: 12}
  08_stage1_finetune: {MAX_STEPS: 4, BATCH_SIZE: 4, LEARNING_RATE: 0.001, EVAL_LIMIT: 1,
                       MAX_NEW_TOKENS: 8}
  09_stage2_finetune: {MAX_STEPS: 2, BATCH_SIZE: 2, EVAL_SIZE: 2, EVAL_LIMIT: 1,
                       MAX_NEW_TOKENS: 8, STAGE1_STEPS: 2, STAGE3_STEPS: 2, GGUF_TYPE: null}
  10_embedding_analysis: {N_KANJI: 12, N_WORDS: 12, N_SENTENCES: 12, N_LENS: 4, N_HAND: 12,
                          EXP_STAGE1_STEPS: 2, EXP_PROBES: 1}
"""


@pytest.mark.slow
def test_every_notebook_runs_in_order_on_the_offline_default_model(tmp_path):
    """What `make demo` does — the real notebooks in order, one run folder, the offline
    default model — at the CI budget."""
    report = demo.run_notebooks(profile=_profile(tmp_path, CI_BUDGET), run_dir=tmp_path / "run")
    text = report.read_text()
    for nb in demo.find_notebooks(REPO / "notebooks"):
        assert f"| {nb.stem} | ok |" in text
        assert (tmp_path / "run" / nb.name).is_file()
    assert "| ja_to_en_token_ratio |" in text


def test_store_writes_outputs_back_without_papermill_timings(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    source = _notebook(nbs / "00_first.ipynb", "print('鉄 鐵 铁')")
    demo.run_notebooks(nbs, _profile(tmp_path, "  common: {}\n"), run_dir=tmp_path / "run",
                       store=True)
    stored = nbformat.read(source, as_version=4)
    printed = [o["text"] for c in stored.cells for o in c.get("outputs", []) if "text" in o]
    assert printed == ["鉄 鐵 铁\n"]
    assert "papermill" not in stored.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata
               for c in stored.cells)
    # papermill's injected parameters are gone; the code cells are numbered as one clean run
    assert [c.metadata.get("tags", []) for c in stored.cells] == [["parameters"], []]
    assert [c.execution_count for c in stored.cells if c.cell_type == "code"] == [1, 2]
    # Storing again changes nothing.
    first = source.read_bytes()
    demo.run_notebooks(nbs, _profile(tmp_path, "  common: {}\n"), run_dir=tmp_path / "run",
                       store=True)
    assert source.read_bytes() == first


def test_store_refuses_what_a_reader_must_not_see_and_keeps_the_source(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    source = _notebook(nbs / "00_first.ipynb", "print('くだっ' + chr(0xFFFD))")
    before = source.read_bytes()
    with pytest.raises(RuntimeError, match=r"(?s)00_first.ipynb not stored.*cell 1: U\+FFFD"):
        demo.run_notebooks(nbs, _profile(tmp_path, "  common: {}\n"), run_dir=tmp_path / "run",
                           store=True)
    assert source.read_bytes() == before
    assert "| 00_first | failed: ValueError |" in (tmp_path / "run" / "report.md").read_text()


def test_the_kernel_of_a_run_shows_no_live_bars(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_first.ipynb",
              "import os, warnings\nwarnings.filterwarnings('ignore', message='IProgress')\n"
              "from tqdm.auto import tqdm\n"
              "print(os.environ['QEU_PROGRESS'], sum(tqdm(range(3))), tqdm(range(3)).disable)")
    demo.run_notebooks(nbs, _profile(tmp_path, "  common: {}\n"), run_dir=tmp_path / "run")
    nb = nbformat.read(tmp_path / "run" / "00_first.ipynb", as_version=4)
    assert [o.get("text") for o in nb.cells[-1].outputs] == ["plain 3 True\n"]
    assert "QEU_PROGRESS" not in __import__("os").environ  # the caller's environment is restored
