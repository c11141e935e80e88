"""The ``dualstream-geo`` command.

LightningCLI ``fit``/``validate``/``test``, plus whole-scene ``predict`` and the ``demo``.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, override

from jsonargparse import ArgumentError
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .console import brief_parser_error, quiet_lightning
from .data.datamodule import DualStreamDataModule
from .errors import DualStreamError
from .inference.distributed import PeerStopped
from .memory import keep_freed_memory
from .training.renamed import renamed_arguments
from .training.run_checks import (
    check_checkpoint_file,
    check_config_files,
    check_resumable,
    check_run_folder,
    check_trainer,
)
from .training.stored import read_checkpoint, read_spec, task_hparams
from .training.task import DualStreamSegmentation
from .training.trainer_defaults import (
    SaveConfigBesideCheckpoints,
    default_loggers,
    default_precision,
)

#: Model settings of evaluation only: ``test --model.test_tta d4 --ckpt_path C`` uses d4
#: whatever the checkpoint was trained with.
EVALUATION_SETTINGS = ("test_tta",)


class DualStreamCLI(LightningCLI):
    """LightningCLI with ``fit``, ``validate`` and ``test`` for the dual-stream task."""

    @override
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "test": {"model", "dataloaders", "datamodule"},
        }

    @override
    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # A bad flag or config value raises, so that main() reports it in one line.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # What the model sees is defined once, by the data: the task gets its input spec.
        parser.link_arguments("data.input_spec", "model.input_spec", apply_on="instantiate")

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        # Default loggers go under the run's own default_root_dir, known only after parsing.
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(config.get("default_root_dir") or ".")
        return super().instantiate_trainer(**kwargs)

    def _run_subcommand(self, subcommand: str) -> None:
        folder = os.path.join(self.trainer.default_root_dir, "checkpoints")
        stats = self.datamodule.stats_path if self.datamodule else None
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

    def _parse_ckpt_path(self) -> None:
        # LightningCLI's own reader puts the checkpoint's hyper-parameters over the config as
        # they are; here they are converted first (checkpoints written before the input spec
        # hold settings that are the data's now). Private in LightningCLI, hence the override.
        if not self.config.get("subcommand"):
            return
        subcommand = self.config.subcommand
        config = self.config[subcommand]
        path = config.get("ckpt_path")
        if not path or not os.path.isfile(path):
            return
        checkpoint = read_checkpoint(path)
        hparams = task_hparams(checkpoint)
        if subcommand == "fit":
            # Resuming continues this config's run: a checkpoint of another model, or of a
            # run already finished, is refused instead of silently replacing the config.
            check_resumable(checkpoint, hparams, config, path)
            return
        if hparams:
            update = {subcommand: {"model": hparams}}
            self.config = self.parser.parse_object(update, self.config)

    @override
    def before_instantiate_classes(self) -> None:
        # Before any class is built (and any weights loaded): the run folder takes new files
        # and none of them replaces an input.
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_trainer(self.config[subcommand])
            # The default precision depends on the stage (bf16 evaluation on a CPU that has
            # it), which LightningCLI's trainer_defaults, shared by all stages, cannot say.
            trainer = self.config[subcommand].trainer
            if trainer.get("precision") is None:
                accelerator = str(trainer.get("accelerator") or "auto")
                trainer.precision = default_precision(subcommand, accelerator)
        if subcommand == "fit":
            check_run_folder(self.config["fit"])

    @override
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
        self.model.hparams.update(getattr(self, "evaluation_settings", {}))
        subcommand = self.config.get("subcommand")
        config = self.config_init[subcommand]
        path = config.get("ckpt_path")
        if path in ("last", "best"):
            # The run folder's own file: never Lightning's silent fallback to the weights the
            # model was built with.
            named = os.path.join(self.trainer.default_root_dir, "checkpoints", f"{path}.ckpt")
            if not os.path.isfile(named):
                raise DualStreamError(
                    f"--ckpt_path {path}: no {named} (set --trainer.default_root_dir to the "
                    "run's folder, or give the checkpoint's path)"
                )
            path = config["ckpt_path"] = named
        if not path and not self.model.hparams.get("weights"):
            raise DualStreamError(
                f"{subcommand} scores a trained model: give --ckpt_path CHECKPOINT (without it "
                "the model's random weights would be scored)"
            )
        if path and os.path.isfile(path):
            # Scored as trained: the checkpoint's statistics normalise the data.
            spec = read_spec(read_checkpoint(path), path)
            self.datamodule.adopt(spec, path)

    def before_fit(self) -> None:
        """Resolve ``--ckpt_path last`` to the run's own ``last.ckpt``, or refuse it."""
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
        seed_everything_default=0,
        args=args,
    )


USAGE = """usage: dualstream-geo COMMAND ...   (commands: see below; COMMAND --help for each)

  fit / validate / test   train and evaluate (LightningCLI; --config experiments/demo.yaml)
  predict                 whole-scene sliding-window inference to GeoTIFF
  evaluate                accuracy of a class map against a reference raster, or area and
                          accuracy with 95 % intervals from labelled sample points
  sample-design           a stratified random sample of a class map to label by hand
  grid                    atmospheric products (L2 swaths, NetCDF grids) onto an image's aux grid
  import-original         the original DualStream-DFormer's weights as a checkpoint
  demo                    generate demo scenes, train dual-stream and image-only, report
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the command unwinds as on Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


COMMANDS = (
    "fit",
    "validate",
    "test",
    "predict",
    "evaluate",
    "sample-design",
    "grid",
    "import-original",
    "demo",
)


def user_error(error: BaseException) -> DualStreamError | None:
    """The :class:`DualStreamError` that ``error`` is, or that caused it.

    Jsonargparse wraps what a config class refuses into its own errors.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DualStreamError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


#: The commands that are not LightningCLI's: module and function of each.
ENTRY_POINTS = {
    "demo": (".demo", "demo_main"),
    "predict": (".inference.cli", "predict_main"),
    "evaluate": (".evaluation.cli", "evaluate_main"),
    "grid": (".data.auxiliary.cli", "grid_main"),
    "sample-design": (".evaluation.cli", "sample_design_main"),
    "import-original": (".training.imported", "import_main"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input ends with one ``error:`` line and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()
    # GDAL's messages reach Python as rasterio log records; the errors among them become
    # exceptions, which end as one line: the records themselves would only repeat them.
    logging.getLogger("rasterio").addHandler(logging.NullHandler())
    quiet_lightning()
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    try:
        command, rest = args[0], args[1:]
        if command not in COMMANDS:
            raise DualStreamError(
                f"unknown command {command!r} (commands: {', '.join(COMMANDS)}; "
                "dualstream-geo --help)"
            )
        check_config_files(rest)
        if command in ENTRY_POINTS:
            # Lightning handles SIGTERM for fit/validate/test; these commands unwind as on
            # Ctrl-C (locks released, partial files removed) and say so.
            signal.signal(signal.SIGTERM, _terminate)
            module, function = ENTRY_POINTS[command]
            # Imported when run: each command loads its own modules only.
            entry: Callable[[list[str]], int] = getattr(
                importlib.import_module(module, __package__), function
            )
            return entry(rest)
        converted = [command, *renamed_arguments(rest)]
        if argv is None:
            # The process's own command line is read by LightningCLI itself (passing it as
            # ``args`` makes Lightning warn with the whole argv): settings with former names
            # are renamed in it.
            sys.argv[1:] = converted
        run_lightning(converted if argv is not None else None)
    except ArgumentError as error:
        refused = user_error(error)
        message = str(refused) if refused else brief_parser_error(" ".join(str(error).split()))
        hint = "" if refused else f" (see dualstream-geo {args[0]} --help)"
        print(f"dualstream-geo: error: {message}{hint}", file=sys.stderr)
        return 2
    except PeerStopped as stop:  # another rank failed and reports why
        return stop.code
    except (ValueError, FileNotFoundError) as error:
        # FileNotFoundError: e.g. a --ckpt_path that does not exist (raised by Lightning);
        # a ValueError of jsonargparse's around a setting our classes refused.
        cause: Exception | None = (
            error if isinstance(error, FileNotFoundError) else user_error(error)
        )
        if cause is None:
            raise
        rank = os.environ.get("RANK", "0")
        where = f"rank {rank}: " if rank != "0" else ""
        print(f"dualstream-geo: error: {where}{cause}", file=sys.stderr)
        return 2
    except Terminated:
        print("dualstream-geo: terminated (SIGTERM); nothing half-written is left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("dualstream-geo: interrupted", file=sys.stderr)
        return 130
    return 0
