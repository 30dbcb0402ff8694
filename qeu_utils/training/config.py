"""The settings of one training stage, typed and merged in one place.

A stage's settings are the fields of three dataclasses, spelled as their owners spell them:

- ``StageArguments``: the project's own (what a stage trains on, what it stands on, how it is
  checked, the precision rule);
- TRL's ``ModelConfig``: the model and its LoRA (``model_name_or_path``, ``lora_r``,
  ``lora_alpha``, ``load_in_4bit``, …), turned into PEFT's ``LoraConfig`` by TRL's
  ``get_peft_config`` and into a ``BitsAndBytesConfig`` by ``get_quantization_config``;
- TRL's ``SFTConfig``: the trainer's (``learning_rate``, ``num_train_epochs``,
  ``per_device_train_batch_size``, …).

``resolve(stage, profile, **overrides)`` is the only place they are merged: the packaged stage
config (``stage1``/``stage2``/``stage3``) or a YAML file, then the hardware profile's
``training`` and ``stageN`` entries, then the caller's non-None overrides. The CLI
(``train --config stage1 --learning_rate 3e-4``), the experiment and the notebooks all call it.
A misspelled key or a wrong type is a one-line ``ConfigError`` naming the file, the key and
what is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import functools
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qeu_utils.core.resources import config_path
from qeu_utils.training.profiles import Profile, load_profile

CHAIN_MODES = ("continue", "merge")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# SFTConfig fields the trainer decides from the project's settings and the device; a config
# that sets them directly would be silently overruled, so it is an error instead.
DECIDED = {
    "bf16": "set precision (auto, bf16, fp16, fp32) instead",
    "fp16": "set precision (auto, bf16, fp16, fp32) instead",
    "use_cpu": "the device decides it",
    "gradient_checkpointing": "use activation_checkpointing (its current name)",
    "dtype": "set precision (auto, bf16, fp16, fp32) instead",
    "use_peft": "every stage trains a LoRA adapter",
}


class ConfigError(ValueError):
    """A setting that does not exist or has the wrong type; the message names where."""


@dataclass
class StageArguments:
    """The project's own settings of a stage."""

    stage: int = field(default=1, metadata={"help": "1, 2 or 3 (recorded in lineage.json)"})
    dataset: str = field(default="data/build/init",
                         metadata={"help": "a build directory or a records JSONL file"})
    eval_dataset: str | None = field(
        default=None, metadata={"help": "default: eval.jsonl beside train.jsonl"})
    eval_size: int | None = field(
        default=None, metadata={"help": "evaluate on the first N eval records (None: all)"})
    eval_limit: int | None = field(
        default=None, metadata={"help": "generate answers for at most N eval records per task"})
    init_from: str | None = field(
        default=None, metadata={"help": "a previous stage's output directory"})
    chain: str = field(default="continue", metadata={
        "help": "continue: keep training init_from's adapter; merge: fold it into the base",
        "choices": list(CHAIN_MODES)})
    template: str = field(default="auto", metadata={
        "help": "auto: the tokenizer's chat template if it has one, else Japanese Alpaca"})
    precision: str = field(default="auto", metadata={
        "help": "auto: bf16 with native support, fp16 on older GPUs, fp32 on CPU",
        "choices": list(PRECISIONS)})
    merge: bool = field(default=False, metadata={
        "help": "also save base + adapter merged under output_dir/merged"})
    evaluate: bool = field(default=True, metadata={
        "help": "held-out loss, probes and compliance before and after training"})
    probe_max_new_tokens: int = field(default=48, metadata={"help": "answer length of probes"})


@dataclass
class StageConfig:
    """One stage's resolved settings: ``stage`` (the project's), ``model`` (TRL ``ModelConfig``)
    and ``sft`` (TRL ``SFTConfig``); ``source`` says where they came from."""

    stage: StageArguments
    model: typing.Any  # trl.ModelConfig
    sft: typing.Any  # trl.SFTConfig
    source: str = ""

    @property
    def output_dir(self) -> str:
        return self.sft.output_dir

    def peft_config(self):
        """PEFT's ``LoraConfig`` from the ``lora_*`` settings (TRL's ``get_peft_config``)."""
        from trl import get_peft_config

        return get_peft_config(self.model)

    def quantization_config(self, precision: str):
        """``BitsAndBytesConfig`` for ``load_in_4bit`` (None otherwise), computing in
        ``precision`` (TRL's ``get_quantization_config``)."""
        from trl import get_quantization_config

        compute = {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
        return get_quantization_config(dataclasses.replace(self.model, dtype=compute))

    def record(self) -> dict:
        """Every setting that differs from its owner's default, plus the ones every run
        states, by its upstream name: what ``config.yaml`` and ``run_config.json`` hold."""
        out = {}
        for obj, always in ((self.stage, _fields(StageArguments)),
                            (self.model, ("model_name_or_path", "lora_r", "lora_alpha",
                                          "lora_dropout", "lora_target_modules",
                                          "load_in_4bit")),
                            (self.sft, RECORDED_SFT)):
            defaults = _defaults(type(obj))
            for name in _fields(type(obj)):
                value = getattr(obj, name)
                if name in NOT_RECORDED:
                    continue
                if name in always or (name in _explicit(obj) and value != defaults.get(name)):
                    out[name] = _plain(value)
        return out


# Decided for the machine or fixed by the project: not part of what a run is.
NOT_RECORDED = {"bf16", "fp16", "use_cpu", "use_peft", "report_to", "completion_only_loss",
                "data_seed"}
# SFTConfig settings every run records (the ones that change the trained weights or its logs).
RECORDED_SFT = ("output_dir", "num_train_epochs", "max_steps", "learning_rate",
                "lr_scheduler_type", "warmup_steps", "per_device_train_batch_size",
                "gradient_accumulation_steps", "max_length", "packing",
                "activation_checkpointing", "save_steps", "save_total_limit", "logging_steps",
                "seed")


def resolve(stage: str | os.PathLike = "stage1", profile=None, /, **overrides) -> StageConfig:
    """The settings of a stage: ``stage`` (a packaged config such as ``"stage1"`` or a YAML
    path), then ``profile``'s (a name, a path or a loaded ``Profile``; None: no profile),
    then the non-None ``overrides``, each by its upstream name (``stage=2`` among them sets
    the stage's number)."""
    path = config_path(stage)
    layers: list[tuple[str, dict]] = [(str(path), _read_yaml(path))]
    if profile is not None:
        p = profile if isinstance(profile, Profile) else load_profile(profile)
        number = layers[0][1].get("stage", 1)
        layers.append((f"{p.path} (training)", p.training))
        layers.append((f"{p.path} (stage{number})", p.stages.get(f"stage{number}", {})))
    layers.append(("overrides", {k: v for k, v in overrides.items() if v is not None}))
    merged: dict = {}
    origin: dict = {}
    for where, values in layers:
        for key, value in values.items():
            _check(key, value, where)
            merged[key] = value
            origin[key] = where
    return build(merged, origin, source=" + ".join(w for w, v in layers if v))


def build(values: dict, origin: dict | None = None, source: str = "") -> StageConfig:
    """A ``StageConfig`` from flat settings already checked by name."""
    from trl import ModelConfig, SFTConfig

    origin = origin or {}
    parts = {StageArguments: {}, ModelConfig: {}, SFTConfig: {}}
    for key, value in values.items():
        owner = _owner(key)
        parts[owner][key] = value
    model = parts[ModelConfig]
    model.setdefault("lora_target_modules", "all-linear")
    model["use_peft"] = True
    # Device-neutral until the trainer is built: precision and device are decided there
    # (``trainer.training_arguments``); SFTConfig refuses bf16 on a machine without it, and
    # touches the GPU when told to use one.
    sft = {"report_to": [], "completion_only_loss": True, "activation_checkpointing": False,
           "packing": False, **parts[SFTConfig], "bf16": False, "fp16": False,
           "use_cpu": True}
    sft.setdefault("output_dir", f"runs/stage{values.get('stage', 1)}")
    sft.setdefault("data_seed", sft.get("seed", 42))
    try:
        stage_args = StageArguments(**parts[StageArguments])
        model_config = ModelConfig(**model)
        sft_config = SFTConfig(**sft)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source or 'settings'}: {err}") from err
    for obj, given in ((stage_args, parts[StageArguments]), (model_config, model),
                       (sft_config, sft)):
        object.__setattr__(obj, "_qeu_explicit", frozenset(given))
    if stage_args.chain not in CHAIN_MODES:
        raise ConfigError(f"{origin.get('chain', source)}: chain is {stage_args.chain!r}; "
                          f"allowed: {', '.join(CHAIN_MODES)}")
    if stage_args.precision not in PRECISIONS:
        raise ConfigError(f"{origin.get('precision', source)}: precision is "
                          f"{stage_args.precision!r}; allowed: {', '.join(PRECISIONS)}")
    return StageConfig(stage_args, model_config, sft_config, source)


@functools.cache
def setting_names() -> dict[str, type]:
    """Every settable name → its owner (``StageArguments``, ``ModelConfig``, ``SFTConfig``)."""
    from trl import ModelConfig, SFTConfig

    names = {}
    for owner in (SFTConfig, ModelConfig, StageArguments):
        for name in _fields(owner):
            if name not in DECIDED:
                names[name] = owner
    return names


def cli_overrides(argv: list[str]) -> dict:
    """``--learning_rate 3e-4 --lora_r 8`` → ``{"learning_rate": 3e-4, "lora_r": 8}``, typed
    by TRL's own parser (``TrlParser``); only the flags given, no defaults."""

    from trl import ModelConfig, SFTConfig, TrlParser

    parser = TrlParser([StageArguments, ModelConfig, SFTConfig], add_help=False,
                       allow_abbrev=False)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    try:
        namespace, unknown = parser.parse_known_args(argv)
    except SystemExit as err:  # argparse already printed which flag and why
        raise ConfigError(f"command line: could not read {' '.join(argv)}") from err
    if unknown:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        raise ConfigError(f"command line: unknown setting {flag}{_did_you_mean(flag[2:])}")
    given = vars(namespace)
    for key in given:
        if key in DECIDED:
            raise ConfigError(f"command line: --{key} is not a setting here; {DECIDED[key]}")
    return given


# --- checking -------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _check(key: str, value, where: str) -> None:
    if key in DECIDED:
        raise ConfigError(f"{where}: {key} is not a setting here; {DECIDED[key]}")
    names = setting_names()
    if key not in names:
        raise ConfigError(f"{where}: unknown setting {key!r}{_did_you_mean(key)}")
    hint = _field_type(names[key], key)
    if not _fits(value, hint):
        raise ConfigError(f"{where}: {key} is {value!r}, expected {_type_name(hint)}")


# The project's names before the settings took their owners' names (qeu_utils ≤ 0.1).
RENAMED = {"model": "model_name_or_path", "epochs": "num_train_epochs",
           "batch_size": "per_device_train_batch_size",
           "grad_accum": "gradient_accumulation_steps", "lr_scheduler": "lr_scheduler_type",
           "lora": "lora_r, lora_alpha, lora_dropout, lora_target_modules",
           "qlora": "load_in_4bit", "alpha": "lora_alpha", "r": "lora_r"}


def _did_you_mean(key: str) -> str:
    if key in RENAMED:
        return f"; it is now {RENAMED[key]}."
    names = list(setting_names())
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    if not close:  # "epochz" → num_train_epochs: match a word of the name
        close = [n for n in names if difflib.get_close_matches(key, n.split("_"), cutoff=0.8)
                 and len(n.split("_")) > 1][:3]
    hint = f"; did you mean {' or '.join(close)}?" if close else "."
    return (hint + " Settings are the fields of the stage (qeu_utils.training.config."
            "StageArguments), TRL's ModelConfig and SFTConfig.")


def _field_type(owner: type, name: str):
    return typing.get_type_hints(owner)[name]


def _fits(value, hint) -> bool:
    if hint is typing.Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:  # list[str], dict[str, Any], Literal[...]
        if origin is typing.Literal:
            return value in typing.get_args(hint)
        if origin is list and isinstance(value, str):  # TRL's parser takes one value as a list
            return typing.get_args(hint) in ((str,), ())
        return isinstance(value, origin)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # a bool is an int in Python; `true` as a batch size is a typo
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        if issubclass(hint, str) or hint.__module__.startswith("transformers"):
            return isinstance(value, str)  # enums of transformers take their string values
        return isinstance(value, hint)
    return True


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _owner(key: str) -> type:
    return setting_names()[key]


def _fields(owner: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(owner) if f.init)


def _defaults(owner: type) -> dict:
    out = {}
    for f in dataclasses.fields(owner):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _explicit(obj) -> frozenset:
    return getattr(obj, "_qeu_explicit", frozenset())


def _plain(value):
    """A YAML/JSON-safe copy (enums → their value, sets → sorted lists)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
