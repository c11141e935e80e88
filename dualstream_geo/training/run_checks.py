"""Checks a ``fit`` / ``validate`` / ``test`` command makes before any heavy work.

Its config files, run folder, trainer settings and checkpoint, each refusal one line naming
the file or setting (:class:`~dualstream_geo.errors.DualStreamError`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import yaml

from ..errors import DualStreamError
from ..models.settings import ArchitectureSettings
from ..paths import check_folder_writable, check_output
from ..torchfiles import load_torch_file


def config_inputs(config: Any) -> list[str]:
    """Every local path a parsed ``fit`` config reads.

    Its config files, the data's paths (splits and aux sources) and the model's initial
    weights.
    """
    inputs = [str(path) for path in config.get("config") or []]
    data = config.get("data") or {}
    for split in ("train", "val", "test"):
        scenes = data.get(split)
        if scenes:
            inputs += [*(scenes.get("image") or []), *(scenes.get("mask") or [])]
            inputs += [p for paths in (scenes.get("aux") or {}).values() for p in paths]
    aux = data.get("aux")
    if isinstance(aux, list):
        inputs += [p for source in aux for p in (source.get("paths") or [])]
    model = config.get("model") or {}
    inputs += [model[k] for k in ("weights", "vision_weights", "aux_weights") if model.get(k)]
    return [str(path) for path in inputs]


def check_run_folder(config: Any) -> None:
    """A ``fit`` run's folder can take its files without replacing an input.

    A ``fit`` run's folder (``trainer.default_root_dir``) can take its files, and none of
    them (config.yaml, best/last.ckpt, training_curves.png) replaces an input.

    Raises:
        DualStreamError: naming the folder or the input.
    """
    flag = "--trainer.default_root_dir"
    root = (config.get("trainer") or {}).get("default_root_dir") or "."
    check_output(root, [], flag, "folder", replaced=False)
    inputs = config_inputs(config)
    folder = os.path.join(root, "checkpoints")
    written = [os.path.join(folder, name) for name in ("config.yaml", "best.ckpt", "last.ckpt")]
    for path in [*written, os.path.join(root, "training_curves.png")]:
        check_output(path, inputs, flag)
    existing = os.path.abspath(root)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    check_folder_writable(existing, flag)


def check_resumable(
    checkpoint: dict[str, Any], hparams: dict[str, Any], config: Any, path: str
) -> None:
    """``fit --ckpt_path``: the checkpoint is of this config's model and has epochs left.

    Raises:
        DualStreamError: another architecture (the settings named), or no epoch left.
    """
    model = config.get("model") or {}
    # What defines the architecture: a resumed run must keep it.
    mine = {"task": hparams.get("task"), **(hparams.get("architecture") or {})}
    given = model.get("architecture") or {}
    given = given.as_dict() if hasattr(given, "as_dict") else dict(given)
    # Settings the config leaves out are the defaults.
    theirs = {"task": model.get("task"), **ArchitectureSettings().as_dict(), **given}
    different = [
        f"{key} {mine[key]!r} (the config: {theirs[key]!r})"
        for key in mine
        if theirs.get(key) is not None and mine[key] != theirs[key]
    ]
    if different:
        raise DualStreamError(
            f"--ckpt_path {path} is of another model: {'; '.join(different)}; resume with the "
            "run's own config, or start from its weights with --model.weights"
        )
    loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    done = ((loop.get("epoch_progress") or {}).get("current") or {}).get("processed")
    epochs = (config.get("trainer") or {}).get("max_epochs")
    if done is not None and epochs is not None and epochs > 0 and done >= epochs:
        raise DualStreamError(
            f"--ckpt_path {path} has trained {done} epoch(s) and --trainer.max_epochs is "
            f"{epochs}: nothing to resume; raise max_epochs, or start from its weights with "
            "--model.weights"
        )


def check_trainer(config: Any) -> None:
    """Refuse trainer settings Lightning would fail on with a traceback.

    Trainer settings Lightning would fail on with a traceback, or that would start more
    processes than the machine has cores.

    Raises:
        DualStreamError: naming the setting.
    """
    trainer = config.get("trainer") or {}
    epochs = trainer.get("max_epochs")
    if epochs is not None and epochs != -1 and epochs < 1:
        raise DualStreamError(f"--trainer.max_epochs must be >= 1 (or -1: no limit), got {epochs}")
    devices = trainer.get("devices")
    accelerator = str(trainer.get("accelerator") or "auto")
    cuda = torch.cuda.is_available()
    if accelerator in ("gpu", "cuda") and not cuda:
        raise DualStreamError(
            f"--trainer.accelerator {accelerator}: this machine has no GPU (use cpu or auto)"
        )
    if isinstance(devices, int) or (isinstance(devices, str) and devices.lstrip("-").isdigit()):
        count = int(devices)
        if count == 0 or count < -1:
            raise DualStreamError(
                f"--trainer.devices must be >= 1, -1 (all) or auto, got {devices}"
            )
        cores = os.cpu_count() or 1
        if not cuda and count > cores:
            raise DualStreamError(
                f"--trainer.devices {count}: this machine has no GPU and {cores} CPU core(s); "
                f"give at most {cores} processes"
            )


def check_checkpoint_file(path: str | None) -> None:
    """A ``--ckpt_path`` that names a file must be a training checkpoint.

    Checked before Lightning says it restores from it.

    Raises:
        DualStreamError: a local file that does not exist or is not a training checkpoint.
    """
    if not path or path in ("last", "best", "hpc") or "://" in path:
        return
    if not os.path.isfile(path):
        raise DualStreamError(f"--ckpt_path {path} does not exist")
    checkpoint = load_torch_file(path, "training checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DualStreamError(f"--ckpt_path {path}: not a training checkpoint (no state_dict)")


def check_config_files(args: list[str]) -> None:
    """Every ``--config`` file exists and is valid YAML.

    Named with its line (jsonargparse would say ``<unicode string>``).

    Raises:
        DualStreamError: a missing file or a YAML syntax error.
    """
    paths = [b for a, b in zip(args, args[1:], strict=False) if a in ("--config", "-c")]
    paths += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for path in paths:
        if not os.path.isfile(path):
            raise DualStreamError(f"--config {path} does not exist")
        try:
            with open(path) as f:
                yaml.safe_load(f)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise DualStreamError(
                f"--config {path}: not valid YAML ({error.problem}{where})"
            ) from None
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise DualStreamError(f"--config {path}: not valid YAML ({error})") from None
