"""The committed notebooks as a reader gets them: "Run all" on Colab uses the reader's hardware,
and the stored outputs carry no run's parameters, machine paths, bars or cut characters."""

import copy
import json
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from qeu_utils.notebooks import stored
from qeu_utils.training.profiles import load_profile

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ROOTS = stored.checkout_roots(REPO)

T4 = {"cuda": True, "name": "Tesla T4", "capability": (7, 5), "memory_gib": 14.7,
      "bf16_native": False}
CPU = {"cuda": False, "name": None, "capability": None, "memory_gib": None,
       "bf16_native": False}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _tagged(cells: list[dict], tag: str) -> dict:
    (cell,) = [c for c in cells if tag in c["metadata"].get("tags", [])]
    return cell


def test_there_are_eleven_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{k:02d}" for k in range(11)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_nothing_a_reader_must_not_see(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert stored.problems(nb, path.name, ROOTS) == []
    assert path.stat().st_size < stored.MAX_BYTES
    assert not [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))  # one clean run, as Run all numbers it


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_parameters_cell_alone_leaves_the_choice_to_the_hardware(path):
    namespace = {}
    exec("".join(_tagged(_cells(path), "parameters")["source"]), namespace)
    assert namespace["PROFILE"] is None and namespace["MODEL"] is None
    assert not Path(namespace["RUN_DIR"]).is_absolute()


def test_readme_and_results_name_no_machine_path():
    # What is committed: a run in progress leaves git-ignored checkpoints under results/.
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    files = [REPO / "README.md"] + [REPO / p for p in tracked
                                    if Path(p).suffix in {".md", ".json", ".jsonl"}]
    assert len(files) > 5
    found = {str(p.relative_to(REPO)): stored.machine_paths(p.read_text(encoding="utf-8"), ROOTS)
             for p in files}
    assert {name: hits for name, hits in found.items() if hits} == {}


def _run_all_until_setup(path: Path, cwd: Path, info: dict, monkeypatch, capsys) -> dict:
    """What Colab's Run all does first: the parameters cell, then the setup cell, with a
    ``google.colab`` module present and the GPU that ``info`` describes."""
    monkeypatch.chdir(cwd)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr("qeu_utils.training.profiles.device_info", lambda: info)
    cells = _cells(path)
    namespace = {"__name__": "__main__"}
    exec("".join(_tagged(cells, "parameters")["source"]), namespace)
    exec("".join(_tagged(cells, "qeu-setup")["source"]), namespace)
    namespace["printed"] = capsys.readouterr().out
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_on_a_simulated_colab_uses_the_readers_hardware(path, tmp_path, monkeypatch,
                                                                capsys):
    for name, info in (("t4", T4), ("cpu", CPU)):
        content = tmp_path / name / "content"  # Colab's working directory
        content.mkdir(parents=True)
        ns = _run_all_until_setup(path, content, info, monkeypatch, capsys)
        assert ns["PROFILE"].name == name, path.name
        assert ns["MODEL"] == load_profile(name).model
        assert Path(ns["RUN_DIR"]).resolve().is_relative_to(tmp_path.resolve() / name)
        assert "Colab runtime detected." in ns["printed"]
        assert f"profile **{name}**" in ns["printed"]
        run = json.loads((Path(ns["RUN_DIR"]) / "run.json").read_text())
        assert (run["profile"], run["written_by"]) == (name, path.stem)


def _executed(tmp_path: Path) -> nbformat.NotebookNode:
    """A notebook as papermill leaves it, with everything storing must deal with."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = None\nRUN_DIR = "../runs/notebooks"',
                                       execution_count=1)
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell(f'PROFILE = "cpu"\nRUN_DIR = "{tmp_path}/runs"',
                                         execution_count=2)
    injected.metadata["tags"] = ["injected-parameters"]
    injected.metadata["papermill"] = {"duration": 0.1}
    work = nbformat.v4.new_code_cell("print(path)", execution_count=3)
    work.outputs = [
        nbformat.v4.new_output("stream", text=f"wrote {tmp_path}/repo/runs/notebooks/init\n"),
        nbformat.v4.new_output("stream", text=f"model in {tmp_path}/home/.cache/qeu_utils\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": f"{tmp_path}/repo"}),
    ]
    nb.cells = [params, injected, work]
    nb.metadata["papermill"] = {"parameters": {}}
    return nb


def test_storing_drops_the_injected_cell_renumbers_and_makes_paths_relative(tmp_path):
    nb = stored.clean(_executed(tmp_path), tmp_path / "repo", home=tmp_path / "home")
    assert [c.metadata.get("tags") for c in nb.cells] == [["parameters"], None]
    assert [c.execution_count for c in nb.cells] == [1, 2]
    assert "papermill" not in nb.metadata
    assert nb.cells[1].outputs[0]["text"] == ("wrote runs/notebooks/init\n"
                                              "model in ~/.cache/qeu_utils\n")
    assert nb.cells[1].outputs[1]["data"]["text/plain"] == "."
    assert stored.problems(nb) == []
    again = stored.clean(copy.deepcopy(nb), tmp_path / "repo", home=tmp_path / "home")
    assert again == nb


def test_problems_name_the_cell_and_what_a_reader_would_see(tmp_path):
    nb = _executed(tmp_path)
    nb.cells[2].outputs = [
        nbformat.v4.new_output("stream", text="A: この文を中国語に訳してくだっ\ufffd\n"),
        nbformat.v4.new_output("stream", text="kanji 1/3: 100%|██| 3/3 [00:01<00:00,  2.47it/s]\n"
                                              "Writing: 100%|██| 269M/269M [00:01, 135Mbyte/s]\n"),
        nbformat.v4.new_output("display_data", data={
            "text/html": "<progress value='20' max='20'></progress>", "text/plain": "x"}),
        nbformat.v4.new_output("stream", text="metric" + "   col" * 40 + "\n"),
        nbformat.v4.new_output("stream", text="loaded from /root/.cache/x and /home/u/y\n"),
    ]
    found = stored.problems(nb, "08.ipynb")
    assert found[0] == "08.ipynb cell 1: papermill's injected-parameters cell"
    text = "\n".join(found)
    cut = "'A: この文を中国語に訳してくだっ\ufffd'"
    assert f"08.ipynb cell 2: U+FFFD (a cut character): {cut}" in text
    assert "a progress bar's speed: '7it/s]'" in text
    assert "an HTML progress bar" in text
    assert "a table 246 characters wide (at most 120)" in text
    assert text.count("machine path: ") == 2
    # A long line of prose, a URL path and a mention of `.venv/` are not problems.
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "stream", text="see https://ja.wikipedia.org/wiki/富士山 or .venv/ " + "word " * 40)])]
    assert stored.problems(nb) == []
    assert stored.problems(nb, extra_roots=("/w",)) == []
    nb.cells[0].outputs[0]["text"] = "wrote /w/x/runs/init"
    assert stored.problems(nb, extra_roots=("/w",)) == ["notebook cell 0: machine path: "
                                                        "'wrote /w/x/runs/init'"]


def test_a_large_notebook_is_named_with_its_size():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("あ" * 200_000)]
    (problem,) = stored.problems(nb, "10.ipynb")
    assert problem.startswith("10.ipynb: 600,") and problem.endswith("bytes, over 500,000")
