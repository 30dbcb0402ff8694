"""The experiment's settings: the conditions and phases, the settings a profile gives
(:func:`resolve_settings`), and which of them the prepared data depend on — ``run`` may
change the others, ``prepare`` refuses a directory prepared with different data settings."""

from __future__ import annotations

from pathlib import Path

from qeu_utils.experiment.questions import FORGETTING
from qeu_utils.training.profiles import load_profile

# base: no training; B: the recipe; the controls (qeu_utils.experiment.controls).
CONDITIONS = ("base", "B", "C-changed", "C-swap")
TRAINED = ("B", "C-changed", "C-swap")
PHASES = ("prepare", "run", "score")
# Text tools the run phase must never need: the GPU machine does not have them.
TEXT_TOOL_MODULES = ("fugashi", "unidic_lite", "unidic", "opencc", "babel", "kanji_lists",
                     "jamdict", "jamdict_data")


def default_gate(model: str) -> str | None:
    """``results/gate-<model>`` (the knowledge gate's result for the model) when it exists
    under the working directory, else None (no strata)."""
    path = Path("results") / f"gate-{model}"
    return str(path) if (path / "items.jsonl").is_file() else None


def resolve_settings(profile: str = "cpu", **overrides) -> dict:
    """The experiment's settings: the profile's (``qeu_utils.training.profiles``), then the non-None
    ``overrides``. Precision: ``fp32`` for a profile without a GPU (``cpu``, ``cpu-full``) on
    any machine (so a GPU rerun
    reproduces the CPU recipe), the profile's otherwise."""
    p = load_profile(profile)
    e = p.experiment
    settings = {
        "profile": p.name,
        "model": p.model,
        "seeds": list(e["seeds"]),
        "conditions": list(CONDITIONS),
        "stage1_epochs": e["stage1_epochs"],
        "stage1_max_steps": -1,
        "stage1_learning_rate": p.stages["stage1"]["learning_rate"],
        # Stage 2 after the stage-1 measurement, measured again: durability only.
        "durability": bool(e.get("durability", False)),
        "stage2_steps": e["stage2_steps"],
        "stage2_learning_rate": e["stage2_learning_rate"],
        # The rest of the training settings (accumulation, length, checkpointing, LoRA) are
        # the profile's, applied by qeu_utils.training.config.resolve.
        "batch_size": p.training["per_device_train_batch_size"],
        "precision": "fp32" if p.gpu is None else p.precision,
        "probes_per_kind": e["probes_per_kind"],
        # Generation only for a sample: this many probes per kind of item (kanji, country,
        # loanword, style), spread over the directions; answers finish at EOS / a stop string.
        "generate_per_kind": e.get("generate_per_kind", 100),
        "max_new_tokens": e["max_new_tokens"],
        "n_kanji": p.analysis["n_kanji"],
        "n_sentences": p.analysis["n_sentences"],
        "n_lens": p.analysis["n_lens"],
        "forgetting": len(FORGETTING),
        "init_size": 300,
        "data_seed": 0,
        "dolly_source": "sample" if p.gpu is None else "kunishou/databricks-dolly-15k-ja",
        "dolly_eval_records": None,  # held-out Dolly loss on the first N records (None: all)
        "gate": None,  # the knowledge gate's result folder (default: results/gate-<model>)
        "generation_batch_size": 16,
        "margin_batch_size": 16,
        "save_steps": 50,
        "logging_steps": 5,
    }
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in settings:
            raise ValueError(f"unknown experiment setting {key!r}; known: {sorted(settings)}")
        settings[key] = list(value) if isinstance(value, tuple) else value
    if settings["gate"] is None:
        settings["gate"] = default_gate(settings["model"])
    unknown = [c for c in settings["conditions"] if c not in CONDITIONS]
    if unknown or set(settings["conditions"]) != set(CONDITIONS):
        raise ValueError(f"conditions must be {', '.join(CONDITIONS)} (every claim needs "
                         f"both controls), got {settings['conditions']}")
    if not settings["seeds"]:
        raise ValueError("at least one seed is needed")
    return settings


_RUN_ONLY = ("conditions", "seeds", "precision", "generation_batch_size", "margin_batch_size",
             "save_steps", "logging_steps", "model", "stage1_epochs", "stage1_max_steps",
             "stage1_learning_rate", "durability", "stage2_steps", "stage2_learning_rate",
             "batch_size", "max_new_tokens", "profile")


def _data_settings(settings: dict) -> dict:
    """The settings the prepared data depend on (the rest only shape the runs). A setting at
    None is left out, so one added later at its default matches a manifest written before."""
    return {k: v for k, v in settings.items() if k not in _RUN_ONLY and v is not None}


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys)
