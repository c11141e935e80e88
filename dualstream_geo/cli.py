"""The ``dualstream-geo`` command: LightningCLI ``fit``/``validate``/``test``, plus whole-scene
``predict`` and the ``demo``."""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from jsonargparse import ArgumentError
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

from .data.datamodule import DualStreamDataModule
from .errors import DualStreamError
from .inference.distributed import PeerStopped
from .memory import keep_freed_memory
from .torchfiles import load_torch_file
from .training.task import DualStreamSegmentation


def default_precision() -> str:
    """bf16 mixed precision on a GPU that supports it, 32-bit otherwise."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def default_loggers(root: str = ".") -> list[Logger]:
    """CSV logging always; TensorBoard too when it is installed."""
    loggers: list[Logger] = [CSVLogger(root, name="logs")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(root, name="logs"))
    return loggers


class SaveConfigBesideCheckpoints(SaveConfigCallback):
    """Write the resolved config to ``<default_root_dir>/checkpoints/config.yaml``."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = os.path.join(trainer.default_root_dir, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        self.parser.save(
            self.config, os.path.join(folder, self.config_filename), skip_none=False, overwrite=True
        )


def check_consistency(task: DualStreamSegmentation, datamodule: DualStreamDataModule) -> None:
    """Model, data and any checkpoint agree on bands, classes and the air grid."""
    h, d = task.hparams, datamodule.hparams
    channels = tuple(name.lower() for name in (*d["bands"], *d["indices"]))
    if len(channels) != h["in_channels"]:
        raise DualStreamError(
            f"the model expects {h['in_channels']} image bands {tuple(h['band_names'])}, the data "
            f"provides {len(channels)} {channels}"
        )
    if d["indices"] and tuple(name.lower() for name in h["band_names"]) != channels:
        # The predictor reads the bands before the indices and computes the indices again.
        raise DualStreamError(
            f"model.band_names must be the data's bands, then its indices: {list(channels)}"
        )
    if d["class_map"]:
        top = max(d["class_map"].values())
        if top >= h["num_classes"] and top != d["ignore_index"]:
            raise DualStreamError(
                f"class_map maps to class {top}, but num_classes is {h['num_classes']} "
                f"(classes 0..{h['num_classes'] - 1})"
            )
    if d["use_air"] != h["use_air"]:
        raise DualStreamError(f"data use_air={d['use_air']} but model use_air={h['use_air']}")
    if d["air_scale"] != task.model.air_reduction:
        raise DualStreamError(
            f"air_scale {d['air_scale']} does not match the model's air grid "
            f"(1/{task.model.air_reduction})"
        )


def check_checkpoint_file(path: str | None) -> None:
    """A ``--ckpt_path`` that names a file must be a training checkpoint."""
    if not path or path in ("last", "best", "hpc") or not os.path.isfile(path):
        return
    checkpoint = load_torch_file(path, "training checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DualStreamError(f"--ckpt_path {path}: not a training checkpoint (no state_dict)")


#: Model settings of evaluation only: ``test --model.test_tta d4 --ckpt_path C`` uses d4
#: whatever the checkpoint was trained with.
EVALUATION_SETTINGS = ("test_tta",)


class DualStreamCLI(LightningCLI):
    """LightningCLI with ``fit``, ``validate`` and ``test`` for the dual-stream task."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "test": {"model", "dataloaders", "datamodule"},
        }

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # A bad flag or config value raises, so that main() reports it in one line.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        # Default loggers go under the run's own default_root_dir, known only after parsing.
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(config.get("default_root_dir") or ".")
        return super().instantiate_trainer(**kwargs)

    def _check(self) -> None:
        check_consistency(self.model, self.datamodule)  # type: ignore[arg-type]

    def _run_subcommand(self, subcommand: str) -> None:
        folder = os.path.join(self.trainer.default_root_dir, "checkpoints")
        stats = self.datamodule.hparams.get("stats_path") if self.datamodule else None
        # Files this run creates before its first checkpoint: removed if it fails before one.
        fresh = [
            p
            for p in (os.path.join(folder, "config.yaml"), stats)
            if p and not os.path.exists(p) and subcommand == "fit"
        ]
        try:
            super()._run_subcommand(subcommand)
        except BaseException as error:
            if not os.path.exists(os.path.join(folder, "last.ckpt")):
                for path in fresh:
                    if os.path.exists(path):
                        os.remove(path)
            # Lightning turns Ctrl-C into a graceful shutdown and exit status 1; report it as
            # an interruption (130), as every other command does.
            if isinstance(error, SystemExit) and self.trainer.interrupted:
                raise KeyboardInterrupt from None
            raise

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads hyper-parameters from --ckpt_path right after parsing: check the
        # file first, so that a wrong one is one line, not an unpickling traceback.
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_checkpoint_file(self.config[subcommand].get("ckpt_path"))
            # ...and puts them over the command's own. Settings that only change how a run is
            # evaluated are the command's: kept here, given back to the model before the run.
            model = self.config[subcommand].get("model") or {}
            self.evaluation_settings = {k: model[k] for k in EVALUATION_SETTINGS if k in model}

    def _evaluate(self) -> None:
        self._check()
        self.model.hparams.update(getattr(self, "evaluation_settings", {}))

    def before_fit(self) -> None:
        self._check()
        config = self.config_init["fit"]
        if config.get("ckpt_path") == "last":
            # The run's own last.ckpt; never silently start again from epoch 0.
            path = os.path.join(self.trainer.default_root_dir, "checkpoints", "last.ckpt")
            if not os.path.isfile(path):
                raise DualStreamError(
                    f"--ckpt_path last: no {path} to resume from (drop --ckpt_path to start "
                    "a new run, or set --trainer.default_root_dir to the run's folder)"
                )
            config["ckpt_path"] = path

    before_validate = before_test = _evaluate


def run_lightning(args: list[str] | None) -> None:
    """LightningCLI on ``args`` (None: the process's own command line)."""
    DualStreamCLI(
        DualStreamSegmentation,
        DualStreamDataModule,
        save_config_callback=SaveConfigBesideCheckpoints,
        trainer_defaults={"precision": default_precision()},
        seed_everything_default=0,
        args=args,
    )


USAGE = """usage: dualstream-geo {fit,validate,test,predict,evaluate,import-original,demo} ...

  fit / validate / test   train and evaluate (LightningCLI; --config experiments/demo.yaml)
  predict                 whole-scene sliding-window inference to GeoTIFF
  evaluate                accuracy of a class map against a reference raster
  import-original         the original DualStream-DFormer's weights as a checkpoint
  demo                    generate demo scenes, train dual-stream and image-only, report
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input ends with one ``error:`` line and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    try:
        command, rest = args[0], args[1:]
        if command == "demo":
            from .demo import demo_main

            return demo_main(rest)
        if command == "predict":
            from .inference.cli import predict_main

            return predict_main(rest)
        if command == "evaluate":
            from .evaluation.cli import evaluate_main

            return evaluate_main(rest)
        if command == "import-original":
            from .training.imported import import_main

            return import_main(rest)
        # The process's own command line is read by LightningCLI itself (passing it as
        # ``args`` makes Lightning warn with the whole argv).
        run_lightning(args if argv is not None else None)
    except ArgumentError as error:
        message = " ".join(str(error).split())
        print(
            f"dualstream-geo: error: {message} (see dualstream-geo {args[0]} --help)",
            file=sys.stderr,
        )
        return 2
    except PeerStopped as stop:  # another rank failed and reports why
        return stop.code
    except (DualStreamError, FileNotFoundError) as error:
        # FileNotFoundError: e.g. a --ckpt_path that does not exist (raised by Lightning).
        rank = os.environ.get("RANK", "0")
        where = f"rank {rank}: " if rank != "0" else ""
        print(f"dualstream-geo: error: {where}{error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dualstream-geo: interrupted", file=sys.stderr)
        return 130
    return 0
