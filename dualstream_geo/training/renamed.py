"""Task settings that were renamed or grouped, converted wherever settings are read.

The second stream is called ``aux`` in every setting (``data.aux``, ``data.aux_scale``,
``model.architecture.aux_stem``, ``model.aux_weights``); the deep-supervision heads'
weights are ``loss.head_weights``; how the model is built is one group,
``model.architecture`` (:class:`~dualstream_geo.models.settings.ArchitectureSettings`), and
which checkpoints are written another, ``model.checkpoints``. Checkpoints, ``--config``
files and command-line flags written with the former names (``air_stem``, ``air_weights``,
``loss.aux_weights``, ``preset`` and the other architecture settings at the top level,
``monitor``, ``checkpoint_every_n_steps``, ``keep_epoch_checkpoints``) are read as today's,
with a warning naming the old and the new name. Names that the sample contract
(``../shared/DESIGN.md``: the sample's ``air`` tensor) and the original's state dict
(``air_encoder.*``, ``aux_classifier_*``) fix keep their spelling: they are data and weights
layouts, not settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import yaml

from ..models.settings import ARCHITECTURE_FIELDS

#: The task's settings renamed: old name -> new name (dotted: moved into a group).
MODEL_RENAMED = {
    "air_stem": "architecture.aux_stem",
    "air_weights": "aux_weights",
    **{name: f"architecture.{name}" for name in ARCHITECTURE_FIELDS},
    "monitor": "checkpoints.monitor",
    "checkpoint_every_n_steps": "checkpoints.every_n_steps",
    "keep_epoch_checkpoints": "checkpoints.keep_epochs",
}
#: The ``loss`` settings renamed.
LOSS_RENAMED = {"aux_weights": "head_weights"}


def renamed_hparams(hparams: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Task settings (a checkpoint's hyper-parameters, a config's ``model``) with today's names.

    Args:
        hparams: the settings as written.

    Returns:
        The settings renamed, and one ``old -> new`` phrase per name converted.
    """
    out = dict(hparams)
    found = []
    for old, new in MODEL_RENAMED.items():
        if old not in out:
            continue
        group, _, name = new.rpartition(".")
        target = out
        if group:
            target = out[group] = dict(out.get(group) or {})
        target[name] = out.pop(old)
        found.append(f"model.{old} -> model.{new}")
    loss = out.get("loss")
    if isinstance(loss, Mapping):
        loss = dict(loss)
        for old, new in LOSS_RENAMED.items():
            if old in loss:
                loss[new] = loss.pop(old)
                found.append(f"model.loss.{old} -> model.loss.{new}")
        out["loss"] = loss
    return out, found


def renamed_config(config: Any) -> tuple[Any, list[str]]:
    """A parsed ``--config`` file with today's names under ``model`` (or its ``init_args``).

    Args:
        config: the file's YAML content.

    Returns:
        The content renamed, and one ``old -> new`` phrase per name converted.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        return config, []
    model = dict(config["model"])
    if isinstance(model.get("init_args"), Mapping):
        model["init_args"], found = renamed_hparams(model["init_args"])
    else:
        model, found = renamed_hparams(model)
    return {**config, "model": model}, found


def renamed_flag(flag: str) -> tuple[str, str | None]:
    """One command-line argument with today's name (``--model.air_stem=x`` and the like).

    Args:
        flag: the argument as given.

    Returns:
        The argument renamed, and the ``old -> new`` phrase (None when unchanged).
    """
    key, sep, value = flag.partition("=")
    parts = key.split(".")
    if not key.startswith("--model.") or len(parts) < 2:
        return flag, None
    # --model.<name>, --model.init_args.<name>, --model[.init_args].loss.<name>
    names = parts[2:] if parts[1] == "init_args" else parts[1:]
    table = MODEL_RENAMED if len(names) == 1 else LOSS_RENAMED
    if len(names) > 2 or (len(names) == 2 and names[0] != "loss") or names[-1] not in table:
        return flag, None
    new = ".".join([*parts[:-1], table[names[-1]]])
    return new + sep + value, f"{key[2:]} -> {new[2:]}"


def warn_renamed(found: list[str], where: str) -> None:
    """One warning naming the former settings ``where`` (a file, a checkpoint) converted.

    Args:
        found: the ``old -> new`` phrases.
        where: what held them.
    """
    if found:
        _warn(f"{where}: {', '.join(found)} (former names, read as the new ones)")


def renamed_arguments(args: list[str]) -> list[str]:
    """A Lightning command line with today's setting names, in flags and ``--config`` files.

    A config file that uses a former name is passed on as its converted content (YAML
    text, which ``--config`` also takes); the file itself is never rewritten.

    Args:
        args: the command line after the command name's position (``fit ...``).

    Returns:
        The arguments to parse; a warning names every conversion.
    """
    out = []
    config_next = False
    for arg in args:
        if config_next or arg.startswith("--config="):
            path = arg.split("=", 1)[1] if arg.startswith("--config=") else arg
            converted = _converted_config(path)
            if converted is not None:
                arg = f"--config={converted}" if arg.startswith("--config=") else converted
            out.append(arg)
            config_next = False
            continue
        config_next = arg in ("--config", "-c")
        arg, phrase = renamed_flag(arg)
        if phrase:
            _warn(f"{phrase} (a former name, read as the new one)")
        out.append(arg)
    return out


def _converted_config(path: str) -> str | None:
    """The YAML text of config file ``path`` with today's names, or None when unchanged."""
    try:
        with open(path) as f:
            content = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None  # reported by the config checks
    converted, found = renamed_config(content)
    if not found:
        return None
    warn_renamed(found, f"--config {path}")
    return yaml.safe_dump(converted, sort_keys=False)


def _warn(message: str) -> None:
    warnings.warn(f"renamed setting: {message}", FutureWarning, stacklevel=3)
