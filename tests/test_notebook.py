import json
import shutil
from pathlib import Path

import pytest

from qeu_utils.notebooks import session as notebook
from qeu_utils.notebooks.session import RunMismatchError, resolve_run, set_repo

REPO = Path(__file__).resolve().parent.parent


def test_first_notebook_writes_run_json_and_later_ones_follow_it(tmp_path):
    run = resolve_run(tmp_path, "00_setup", model="tiny-random", profile="cpu")
    assert {k: run[k] for k in ("model", "profile", "seed", "written_by")} == {
        "model": "tiny-random", "profile": "cpu", "seed": 0, "written_by": "00_setup"}
    again = resolve_run(tmp_path, "08_stage1_finetune")  # MODEL = None follows the run
    assert again == run
    assert json.loads((tmp_path / "run.json").read_text()) == run


def test_a_mismatched_model_names_both_models_and_who_set_them(tmp_path):
    resolve_run(tmp_path, "08_stage1_finetune", model="tiny-random", profile="cpu")
    with pytest.raises(RunMismatchError) as err:
        resolve_run(tmp_path, "10_embedding_analysis", model="smollm2-135m-instruct")
    message = str(err.value)
    assert "model = 'tiny-random' (written by notebook 08_stage1_finetune)" in message
    assert "10_embedding_analysis asks for model = 'smollm2-135m-instruct'" in message
    with pytest.raises(RunMismatchError, match="profile = 'cpu'.*asks for profile = 't4'"):
        resolve_run(tmp_path, "09_stage2_finetune", profile="t4")


def test_without_a_model_the_profile_chooses(tmp_path, monkeypatch):
    monkeypatch.setattr("qeu_utils.notebooks.session.choose_profile", lambda *a, **k: "t4")
    run = resolve_run(tmp_path, "01_style_dataset")
    assert (run["model"], run["profile"]) == ("gemma3-270m", "t4")


def test_a_broken_run_json_is_an_error_not_a_fresh_start(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunMismatchError, match=r"run.json: not valid JSON"):
        resolve_run(tmp_path, "00_setup")


def test_start_prints_the_hardware_report_and_the_run(tmp_path, capsys):
    run_dir, model, profile = notebook.start(tmp_path / "run", "00_setup", model="tiny-random",
                                             profile="cpu")
    out = capsys.readouterr().out
    assert run_dir == (tmp_path / "run").resolve() and model == "tiny-random"
    assert profile.name == "cpu"
    assert "profile" in out and "tiny-random" in out and "written by 00_setup" in out


def test_every_notebook_has_the_same_setup_cell_and_the_readme_badges_agree():
    url, ref = notebook.repo_settings(REPO / "pyproject.toml")
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) == 11
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
        params = next(i for i, c in enumerate(cells)
                      if "parameters" in c["metadata"].get("tags", []))
        setup = next(c for c in cells[params + 1:] if c["cell_type"] == "code")
        assert notebook.SETUP_TAG in setup["metadata"]["tags"], path.name
        assert setup["source"] == notebook.setup_source(url, ref, path.stem), path.name
        assert "-e" not in "".join(setup["source"]).split()  # never an editable install
        source = "".join(cells[params]["source"])
        for name in ("MODEL = None", "PROFILE = None", "USE_DRIVE = False", "RUN_DIR ="):
            assert name in source, (path.name, name)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    badges = [b for b in readme.split("(https://colab.research.google.com/github/")[1:]]
    assert len(badges) == 11
    assert all(b.startswith(url.removeprefix("https://github.com/") + f"/blob/{ref}/")
               for b in badges)


def test_set_repo_rewrites_cells_badges_and_pyproject(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    changed = set_repo(root, "https://github.com/someone/fork", "v1.0")
    assert len(changed) == 13  # pyproject, 11 notebooks, README
    assert notebook.repo_settings(root / "pyproject.toml") == (
        "https://github.com/someone/fork", "v1.0")
    nb = json.loads((root / "notebooks" / "08_stage1_finetune.ipynb").read_text())
    text = "".join(next(c for c in nb["cells"]
                        if notebook.SETUP_TAG in c["metadata"].get("tags", []))["source"])
    assert 'QEU_INSTALL = "qeu_utils @ git+https://github.com/someone/fork@v1.0"' in text
    assert '"08_stage1_finetune"' in text
    assert "github/someone/fork/blob/v1.0/notebooks/00_setup.ipynb" in (
        root / "README.md").read_text()
    assert set_repo(root) == []  # idempotent
    with pytest.raises(ValueError, match="must be https"):
        set_repo(root, "git@github.com:x/y.git")
