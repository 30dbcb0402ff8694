"""The user's path: the package built as a wheel, installed outside the repository, used from a
directory with no repository in sight — the CLI, and every notebook alone in a fresh kernel on
a simulated Colab runtime.

The test venv gets the wheel (``--no-deps``) and sees the dependencies of the project's venv
through a ``.pth`` line; a plain path line does not run the ``.pth`` files it points at, so the
checkout's editable install stays invisible and ``qeu_utils`` can only come from the wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# Tiny budgets per notebook on top of the cpu profile's demo parameters.
TINY = {
    "common": {"MODEL": "tiny-random"},
    "00_setup": {"MAX_NEW_TOKENS": 8},
    "08_stage1_finetune": {"MAX_STEPS": 2, "EVAL_LIMIT": 1, "MAX_NEW_TOKENS": 4},
    "09_stage2_finetune": {"MAX_STEPS": 2, "EVAL_LIMIT": 1, "MAX_NEW_TOKENS": 4,
                           "STAGE3_STEPS": 1},
    "10_embedding_analysis": {"N_KANJI": 12, "N_SENTENCES": 12, "N_LENS": 4},
}
COLAB_STANDIN = '''\
"""A stand-in for Colab's google.colab module: enough for the notebooks' setup cell."""
class drive:
    @staticmethod
    def mount(path):
        raise RuntimeError("the test never mounts Drive")
'''


def _run(cmd, cwd, env, timeout=900):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    # Build from a copy: an in-place build leaves build/lib behind, which would carry deleted
    # modules into later wheels.
    source = root / "source"
    top = {".git", ".venv", "runs", "build", "dist", ".whl", ".xfer1", ".xfer2", "results"}

    def skip(folder, names):  # top-level folders only: qeu_utils/build is the package's own
        return [n for n in names if (Path(folder) == REPO and n in top)
                or n == "__pycache__" or n.endswith(".egg-info")]

    shutil.copytree(REPO, source, ignore=skip)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(dist), str(source)], cwd=root, env=os.environ.copy())
    (wheel,) = dist.glob("qeu_utils-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root, env=os.environ.copy())
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root, env=os.environ.copy()).strip())
    (site / "qeu_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=root,
         env=os.environ.copy())
    # Colab imports google.colab before any cell runs; an IPython startup file does that here.
    standin = root / "standin"
    (standin / "google" / "colab").mkdir(parents=True)
    (standin / "google" / "colab" / "__init__.py").write_text(COLAB_STANDIN)
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # noqa: F401\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(standin), IPYTHONDIR=str(root / "ipython"),
               HF_HUB_OFFLINE="1", QEU_CACHE=str(root / "cache"), MPLBACKEND="Agg")
    work = root / "work"  # no repository in sight
    work.mkdir()
    return {"wheel": wheel, "py": py, "site": site, "env": env, "work": work}


def test_the_wheel_ships_the_data_and_no_repository_files(wheel_env):
    import zipfile

    names = set(zipfile.ZipFile(wheel_env["wheel"]).namelist())
    for name in ("trilingual.tsv", "dishes.tsv", "loanwords_en.tsv", "dolly_sample_ja.jsonl"):
        assert f"qeu_utils/data/sources/{name}" in names
    for name in ("configs/stage1.yaml", "profiles/cpu.yaml", "profiles/t4.yaml",
                 "profiles/cpu-full.yaml", "results/curriculum-smollm2-135m-cpu.json"):
        assert f"qeu_utils/data/{name}" in names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "bench/"))]


def test_cli_from_the_installed_wheel(wheel_env):
    py, env, work = str(wheel_env["py"]), wheel_env["env"], wheel_env["work"]
    where = _run([py, "-c", "import qeu_utils; print(qeu_utils.__file__)"], work, env)
    assert where.startswith(str(wheel_env["site"])), where
    _run([py, "-m", "qeu_utils", "build", "init", "--out", "init"], work, env)
    assert (work / "init" / "train.jsonl").is_file()
    _run([py, "-m", "qeu_utils", "build", "dolly", "--source",
          str(wheel_env["site"] / "qeu_utils/data/sources/dolly_sample_ja.jsonl"),
          "--out", "dolly"], work, env)
    assert (work / "dolly" / "part-1-of-4.jsonl").is_file()
    _run([py, "-m", "qeu_utils", "train", "--config", "stage1", "--model_name_or_path",
          "tiny-random", "--dataset", "init", "--max_steps", "2", "--output_dir", "stage1"],
         work, env)
    assert (work / "stage1" / "lineage.json").is_file()
    _run([py, "-m", "qeu_utils", "analyze", "--model", "tiny-random", "--adapter", "stage1",
          "--out", "analysis", "--n-kanji", "12", "--n-sentences", "12", "--n-lens", "4"],
         work, env)
    assert (work / "analysis" / "metrics.json").is_file()


@pytest.mark.parametrize("stem", [
    "01_style_dataset", "02_katakana_dataset", "03_country_dataset", "04_kanji_dataset",
    "05_food_dataset", "06_initialize_dataset", "07_dolly_ja_revision",
    "08_stage1_finetune", "09_stage2_finetune", "10_embedding_analysis",
])
def test_each_notebook_runs_alone_on_a_simulated_colab(wheel_env, stem, tmp_path):
    from qeu_utils.notebooks.demo import demo_parameters

    params = {**demo_parameters("cpu")["common"], **demo_parameters("cpu").get(stem, {}),
              **TINY["common"], **TINY.get(stem, {}), "RUN_DIR": str(tmp_path / "run")}
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    out = tmp_path / f"{stem}.ipynb"
    script = (
        "import json, sys, papermill\n"
        "papermill.execute_notebook(sys.argv[1], sys.argv[2], cwd=sys.argv[3],\n"
        "    parameters=json.load(open(sys.argv[4])), kernel_name='python3',\n"
        "    progress_bar=False)\n"
    )
    _run([str(wheel_env["py"]), "-c", script, str(REPO / "notebooks" / f"{stem}.ipynb"),
          str(out), str(wheel_env["work"]), str(params_file)], wheel_env["work"],
         wheel_env["env"], timeout=1200)
    nb = json.loads(out.read_text())
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"]
                      if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "Colab runtime detected." in printed
    assert "qeu_utils 0.1.0 (installed)" in printed  # the wheel, not the checkout
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["model"] == "tiny-random" and run["written_by"] == stem
    if stem == "10_embedding_analysis":  # the committed result comes from the package here
        shown = json.dumps(nb, ensure_ascii=False)
        assert "curriculum-smollm2-135m-cpu" in shown and "| forgetting_kept |" in shown
