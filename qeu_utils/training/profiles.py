"""Hardware profiles: one YAML per kind of machine (``cpu``, ``t4``, ``l4``, ``a100``) that sets
the model, batch, accumulation, max length, checkpointing and the budgets of the analysis and
the experiment; the one that fits the detected GPU is picked automatically.

- ``load_profile("t4")`` (or a path to a YAML file) → the ``Profile``, checked;
- ``choose_profile()`` → the name that fits this machine (from the GPU's memory and compute
  capability); ``hardware_report()`` / ``hardware_markdown()`` say what was found and why;
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

from qeu_utils.core.resources import profile_path
from qeu_utils.model.models import choose_precision, model_type_of, native_bf16

# The profiles chosen from the hardware; `cpu-full` (cpu with the recipe's notebook budgets) is
# named only by `make notebooks`.
PROFILES = ("cpu", "t4", "l4", "a100")


@dataclass(frozen=True)
class Profile:
    """One kind of machine. ``training`` holds stage settings by their owners' names
    (``model_name_or_path``, ``per_device_train_batch_size``, ``lora_r``, ``precision``, …),
    ``stages`` the per-stage ones (``stage1: {num_train_epochs, learning_rate}``);
    ``qeu_utils.training.config.resolve`` applies both over a stage config."""

    name: str
    path: str
    description: str
    gpu: dict | None
    training: dict
    stages: dict
    analysis: dict
    experiment: dict
    notebooks: dict

    @property
    def model(self) -> str:
        return self.training["model_name_or_path"]

    @property
    def precision(self) -> str:
        return self.training["precision"]


KEYS = {"name": str, "description": str, "gpu": (dict, type(None)), "training": dict,
        "stage1": dict, "stage2": dict, "analysis": dict, "experiment": dict, "notebooks": dict}
# What every profile's training entry must say (the estimator and the README table use them).
TRAINING_KEYS = ("model_name_or_path", "precision", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "max_length", "activation_checkpointing",
                 "load_in_4bit", "lora_r", "lora_alpha")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# Memory limits (GiB, as the driver reports total memory) of the profiles' cards; a T4 reports
# 14.6–15.8 GiB for its nominal 16 GB, an L4 22.5 GiB for 24 GB, so leave a margin.
T4_MAX_GIB = 17.0
L4_MAX_GIB = 25.0


def _profile_data(path, seen=()) -> dict:
    """The YAML mapping at ``path``; ``extends: NAME`` takes every key it does not set from the
    packaged profile NAME (``cpu-full`` is ``cpu`` with the recipe's notebook budgets)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of profile settings")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if parent in seen:
        raise ValueError(f"{path}: extends {parent!r} in a loop ({' → '.join(seen)})")
    return {**_profile_data(profile_path(parent), (*seen, parent)), **data}


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """A packaged profile by name (``"cpu"``, ``"t4"``, ``"l4"``, ``"a100"``, ``"cpu-full"``) or
    a YAML file with the same keys (or ``extends:`` another profile's); unknown names and
    missing, unknown or mistyped keys are errors that name the file and the key (the settings'
    own names are checked where they are applied, ``qeu_utils.training.config.resolve``)."""
    path = profile_path(name_or_path)
    data = _profile_data(path)
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise ValueError(f"{path}: missing profile key(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown profile key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(KEYS)}")
    for key, kind in KEYS.items():
        if not isinstance(data[key], kind):
            raise ValueError(f"{path}: {key} is {data[key]!r}, expected {_kind_name(kind)}")
    lacking = [key for key in TRAINING_KEYS if key not in data["training"]]
    if lacking:
        raise ValueError(f"{path}: training lacks {', '.join(lacking)}")
    if data["training"]["precision"] not in PRECISIONS:
        raise ValueError(f"{path}: precision is {data['training']['precision']!r}, expected "
                         f"one of {', '.join(PRECISIONS)}")
    return Profile(name=data["name"], path=str(path), description=data["description"],
                   gpu=data["gpu"], training=data["training"],
                   stages={"stage1": data["stage1"], "stage2": data["stage2"]},
                   analysis=data["analysis"], experiment=data["experiment"],
                   notebooks=data["notebooks"])


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping",
             type(None): "null"}
    return " or ".join(names[k] for k in kinds)


def device_info() -> dict:
    """What this machine has: ``cuda`` (bool) and, with a GPU, its ``name``, ``capability``
    (major, minor), ``memory_gib`` and ``bf16_native``."""
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False, "name": None, "capability": None, "memory_gib": None,
                "bf16_native": False}

    props = torch.cuda.get_device_properties(0)
    return {"cuda": True, "name": torch.cuda.get_device_name(0),
            "capability": tuple(torch.cuda.get_device_capability(0)),
            "memory_gib": round(props.total_memory / 2**30, 1), "bf16_native": native_bf16(0)}


def choose_profile(info: dict | None = None) -> str:
    """The profile that fits ``info`` (default: this machine's ``device_info()``)."""
    return _choose(info or device_info())[0]


def _choose(info: dict) -> tuple[str, str]:
    if not info.get("cuda"):
        return "cpu", "no CUDA GPU"
    capability = tuple(info["capability"])
    memory = info["memory_gib"]
    cap = f"{capability[0]}.{capability[1]}"
    if capability < (8, 0):
        return "t4", f"compute capability {cap} < 8.0 (no native bf16)"
    if memory <= T4_MAX_GIB:
        return "t4", f"{memory:.1f} GiB ≤ {T4_MAX_GIB:.0f} GiB"
    if memory <= L4_MAX_GIB:
        return "l4", f"bf16 and {memory:.1f} GiB ≤ {L4_MAX_GIB:.0f} GiB"
    return "a100", f"bf16 and {memory:.1f} GiB > {L4_MAX_GIB:.0f} GiB"


def hardware_report(info: dict | None = None, model: str | None = None) -> dict:
    """Device, GPU name, compute capability, memory, the precision training will use (for
    ``model`` when given: some models cannot run in fp16) and the profile chosen (with the
    reason)."""
    info = info or device_info()
    device = "cuda" if info.get("cuda") else "cpu"
    profile, reason = _choose(info)
    capability = info.get("capability")
    # `info` may describe another machine, so the rule is applied to it rather than detected.
    precision = choose_precision(cuda=bool(info.get("cuda")),
                                 bf16_native=bool(info.get("bf16_native")),
                                 model_type=model_type_of(model) if model else None)
    return {"device": device, "gpu": info.get("name"),
            "capability": f"{capability[0]}.{capability[1]}" if capability else None,
            "memory_gib": info.get("memory_gib"), "precision": precision,
            "profile": profile, "reason": reason}


def hardware_markdown(report: dict | None = None) -> str:
    """``hardware_report()`` as one printable paragraph."""
    r = report or hardware_report()
    if r["device"] == "cpu":
        where = "No CUDA GPU: training runs on the CPU"
    else:
        where = (f"GPU: {r['gpu']} (compute capability {r['capability']}, "
                 f"{r['memory_gib']:.1f} GiB)")
    return (f"{where}; precision **{r['precision']}**; profile **{r['profile']}** "
            f"({r['reason']}).")
