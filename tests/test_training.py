"""The training task, two-stage fine-tuning, the CLI and the demo."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from dualstream_geo.cli import DualStreamCLI, main
from dualstream_geo.data import DEMO_CLASS_MAP
from dualstream_geo.data.augment import DualStreamAugmentation
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.demo import FULL
from dualstream_geo.errors import DualStreamError
from dualstream_geo.training import DualStreamSegmentation, SegmentationLoss, read_spec
from dualstream_geo.training.losses import DeepSupervisionLoss
from dualstream_geo.training.renamed import renamed_arguments, renamed_flag
from dualstream_geo.training.stored import task_hparams
from dualstream_geo.training.trainer_defaults import default_precision

from .conftest import demo_datamodule, tiny, trainer

REPO = Path(__file__).resolve().parents[1]


class Snapshots(Callback):
    """Parameters of each part and the learning rates at the start of every epoch."""

    def __init__(self) -> None:
        self.params: list[dict[str, torch.Tensor]] = []
        self.lrs: list[list[float]] = []
        self.epochs: list[int] = []

    def _snap(self, module: LightningModule) -> None:
        self.params.append(
            {
                part: torch.cat(
                    [p.detach().flatten() for p in getattr(module.model, part).parameters()]
                ).clone()
                for part in ("vision_encoder", "air_encoder", "fusion", "decoder")
            }
        )

    def on_train_epoch_start(self, trainer: Trainer, module: LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])
        self._snap(module)

    def on_train_end(self, trainer: Trainer, module: LightningModule) -> None:
        self._snap(module)


def test_two_stage_schedule_and_learning_rates(demo_root: Path, tmp_path: Path) -> None:
    task, datamodule = tiny(
        demo_root,
        tmp_path,
        freeze_epochs=1,
        min_lr=1e-6,
        lr_multipliers={"vision_encoder": 0.1, "air_encoder": 0.5},
    )
    snaps = Snapshots()
    trainer(tmp_path, epochs=3, callbacks=[snaps]).fit(task, datamodule)
    groups = trainer_groups = task.trainer.optimizers[0].param_groups
    assert [g["name"] for g in trainer_groups] == [
        "vision_encoder",
        "air_encoder",
        "fusion",
        "decoder",
    ]
    assert snaps.lrs[0] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3])
    assert snaps.lrs[-1] == pytest.approx([1e-6] * 4)  # cosine reaches min_lr at the last epoch
    assert len(groups) == 4  # unfreezing added no parameter group
    before, after_frozen, end = snaps.params[0], snaps.params[1], snaps.params[-1]
    for part in ("vision_encoder", "air_encoder"):
        assert torch.equal(before[part], after_frozen[part]), f"{part} changed while frozen"
        assert not torch.equal(after_frozen[part], end[part]), (
            f"{part} did not train after unfreezing"
        )
    for part in ("fusion", "decoder"):
        assert not torch.equal(before[part], after_frozen[part]), (
            f"{part} did not train while encoders were frozen"
        )
    assert (tmp_path / "checkpoints" / "best.ckpt").exists() and (
        tmp_path / "checkpoints" / "last.ckpt"
    ).exists()
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    stored = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    spec = read_spec(stored, "best.ckpt")
    assert spec.image.bands == ("blue", "green", "red", "nir")
    assert spec.class_names == ["background", "target"]
    assert spec.aux_names == ["gems", "air_pollution"] and spec.aux_channels == 48
    assert spec.aux_scale == 8 and spec.stats is not None and spec.stats.air is not None
    assert spec.stats.air.bands == spec.aux_channel_names and len(spec.stats.air.mean) == 48
    # What defines the inputs is stored once, not repeated among the hyper-parameters.
    assert (
        not {"num_classes", "labels", "band_names", "use_air"} & stored["hyper_parameters"].keys()
    )


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_ignored_pixels_get_no_gradient(mode: str) -> None:
    channels = 1 if mode == "binary" else 3
    logits = torch.randn(2, channels, 32, 32, requires_grad=True)
    target = torch.randint(0, 2 if mode == "binary" else 3, (2, 32, 32))
    target[:, :10] = 255
    loss = SegmentationLoss(mode, ignore_index=255, dice_weight=0.5)(logits, target)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[:, :, :10].abs().max() == 0
    assert logits.grad[:, :, 10:].abs().sum() > 0


def test_deep_supervision_upsamples_aux_heads() -> None:
    loss = DeepSupervisionLoss(
        SegmentationLoss("multiclass"), {"final": 1.0, "aux_f2": 0.3, "aux_f3": 0.15}
    )
    outputs = {
        "final": torch.randn(1, 2, 64, 64),
        "aux_f2": torch.randn(1, 2, 8, 8, requires_grad=True),
        "aux_f3": torch.randn(1, 2, 4, 4),
    }
    value = loss(outputs, torch.randint(0, 2, (1, 64, 64)))
    value.backward()
    assert (
        value.ndim == 0
        and outputs["aux_f2"].grad is not None
        and outputs["aux_f2"].grad.abs().sum() > 0
    )


def test_binary_task_trains_and_tests(demo_root: Path, tmp_path: Path) -> None:
    task, datamodule = tiny(demo_root, tmp_path, task="binary", freeze_epochs=0)
    fit = trainer(tmp_path, epochs=1)
    fit.fit(task, datamodule)
    results = fit.test(task, datamodule, verbose=False)[0]
    assert 0.0 <= results["test_OverallJaccardIndex"] <= 1.0
    probs = task.probabilities(torch.randn(1, 4, 64, 64), torch.randn(1, 48, 8, 8))
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 64, 64))

    # What was declared stays as declared; what the data showed is found once and kept.
    declared, found = datamodule.declared_spec, datamodule.input_spec
    assert declared.stats is None and found.stats is not None
    assert found.stats is datamodule.stats and task.input_spec.stats is datamodule.stats
    assert found.differences(declared) == [] and found.aux_channel_names
    stored: dict[str, Any] = {}
    task.on_save_checkpoint(stored)
    assert read_spec(stored, "x.ckpt").to_dict() == found.to_dict()
    # Data normalised otherwise is refused, by the task and by the data.
    other = replace(found.stats, image=replace(found.stats.image, mean=[0.0] * 4))
    other.save(str(tmp_path / "other.json"))
    shifted = demo_datamodule(demo_root, tmp_path, stats_path=str(tmp_path / "other.json"))
    with pytest.raises(DualStreamError, match="other band statistics than the model was"):
        fit.test(task, shifted, verbose=False)
    with pytest.raises(DualStreamError, match="x.ckpt: the data is already normalised"):
        datamodule.adopt(replace(found, stats=other), "x.ckpt")
    datamodule.adopt(found, "x.ckpt")  # the same statistics: nothing to change


def test_resume_from_last_continues_at_next_epoch(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from dualstream_geo.training.checkpoint_io import LocalAtomicCheckpointIO

    # Lightning's default writer stages each checkpoint in $TMPDIR (tempfile.mkstemp) and
    # moves it: across file systems a copy that a kill leaves half-written.
    staged: list[Any] = []
    mkstemp = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: staged.append(k) or mkstemp(*a, **k))
    task, datamodule = tiny(demo_root, tmp_path, freeze_epochs=1)
    first = trainer(tmp_path, epochs=1)
    first.fit(task, datamodule)
    assert type(first.strategy.checkpoint_io) is LocalAtomicCheckpointIO
    snaps = Snapshots()
    task, datamodule = tiny(demo_root, tmp_path, freeze_epochs=1)
    resumed = trainer(tmp_path, epochs=2, callbacks=[snaps])
    resumed.fit(task, datamodule, ckpt_path="last")
    assert snaps.epochs == [1]
    assert staged == []
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    # Epoch 1 is past the frozen stage: the encoders are trainable again after resuming.
    assert all(p.requires_grad for p in task.model.vision_encoder.parameters())


def run_cli(args: list[str]) -> int:
    return main(args)


def test_fit_through_cli_with_demo_yaml(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "run"
    code = run_cli(
        [
            "fit",
            "--config",
            str(REPO / "experiments" / "demo.yaml"),
            f"--data.root={demo_root}",
            f"--trainer.default_root_dir={root}",
            "--trainer.max_epochs=2",
            "--data.length=8",
            f"--data.stats_path={root / 'stats.json'}",
            "--model.architecture.vision_encoder=segformer-b0",
            "--trainer.limit_val_batches=2",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert code == 0
    for name in ("best.ckpt", "last.ckpt", "config.yaml"):
        assert (root / "checkpoints" / name).exists(), name
    saved = yaml.safe_load((root / "checkpoints" / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 2 and saved["data"]["patch_size"] == 64
    metrics = list(csv.DictReader(open(next(root.glob("logs/version_*/metrics.csv")))))
    ious = [
        float(r["val_AverageJaccardIndex"]) for r in metrics if r.get("val_AverageJaccardIndex")
    ]
    assert len(ious) == 2 and all(0 <= v <= 1 for v in ious)
    test = [
        "test",
        "--config",
        str(REPO / "experiments" / "demo.yaml"),
        f"--data.root={demo_root}",
        f"--trainer.default_root_dir={root}",
        f"--data.stats_path={root / 'stats.json'}",
        f"--ckpt_path={root / 'checkpoints' / 'best.ckpt'}",
        "--trainer.enable_progress_bar=false",
    ]
    # Which augmentation each test step scores with (what it does to the scores:
    # tests/test_recipe.py; a model this short may map one class, which no flip changes).
    used: list[str] = []
    step = DualStreamSegmentation._shared_step

    def spy(task: DualStreamSegmentation, batch: Any, split: str, tta: str = "none") -> Any:
        used.append(tta)
        return step(task, batch, split, tta)

    monkeypatch.setattr(DualStreamSegmentation, "_shared_step", spy)
    scores = []
    for tta in ("none", "d4"):
        # The checkpoint says test_tta none; the test command's setting is the one used.
        used.clear()
        assert run_cli([*test, f"--model.test_tta={tta}"]) == 0
        assert used and set(used) == {tta}
        logs = max(root.glob("logs/version_*"), key=lambda p: int(p.name.split("_")[1]))
        (row,) = [r for r in csv.DictReader(open(logs / "metrics.csv")) if r.get("test_loss")]
        scores.append(row)
    assert float(scores[0]["test_loss"]) == pytest.approx(float(scores[1]["test_loss"]))


def test_demo_yaml_matches_the_demo_budget() -> None:
    config = yaml.safe_load((REPO / "experiments" / "demo.yaml").read_text())
    assert config["trainer"]["max_epochs"] == FULL.epochs
    assert (
        config["model"]["freeze_epochs"] == FULL.freeze_epochs and config["model"]["lr"] == FULL.lr
    )
    assert config["data"]["length"] == FULL.samples_per_epoch
    assert (config["data"]["patch_size"], config["data"]["batch_size"]) == (
        FULL.patch_size,
        FULL.batch_size,
    )
    classes = config["data"]["classes"]
    assert {int(k): v for k, v in classes["map"].items()} == DEMO_CLASS_MAP
    assert config["data"]["aux"] == "original"


def test_former_setting_names_are_read_as_todays(tmp_path: Path) -> None:
    """A config file, flags and a checkpoint written with the former names (``air_stem``,
    ``air_weights``, ``loss.aux_weights``) give today's settings, with a warning; the
    config file itself is left as it was."""
    text = (REPO / "experiments" / "aihub.yaml").read_text()
    old = text.replace("  aux_weights: null", "  air_weights: null").replace(
        "    head_weights: {final", "    aux_weights: {final"
    )
    assert old != text
    config = tmp_path / "old.yaml"
    config.write_text(old)
    args = ["fit", "--config", str(config), "--model.air_stem=layernorm", "--model.lr", "0.1"]
    with pytest.warns(FutureWarning) as caught:
        converted = renamed_arguments(args)
    messages = " | ".join(str(w.message) for w in caught)
    assert "model.air_weights -> model.aux_weights" in messages
    assert "model.loss.aux_weights -> model.loss.head_weights" in messages
    assert "model.air_stem -> model.architecture.aux_stem" in messages
    assert converted[0] == "fit" and converted[3:] == [
        "--model.architecture.aux_stem=layernorm",
        "--model.lr",
        "0.1",
    ]
    content = yaml.safe_load(converted[2])
    assert content["model"]["aux_weights"] is None and "air_weights" not in content["model"]
    assert content["model"]["loss"]["head_weights"] == {"final": 1.0, "aux_f2": 0.3, "aux_f3": 0.15}
    assert config.read_text() == old
    # Flags under init_args and the loss group; others untouched.
    assert renamed_flag("--model.init_args.loss.aux_weights={}")[0] == (
        "--model.init_args.loss.head_weights={}"
    )
    assert renamed_flag("--data.aux_weights=1") == ("--data.aux_weights=1", None)
    assert renamed_flag("--model.aux_weights=a.pth") == ("--model.aux_weights=a.pth", None)
    # The architecture and checkpoint settings given flat, as before they were grouped.
    flat = "model:\n  preset: lite\n  image_detail: true\n  monitor: val_loss\n"
    (tmp_path / "flat.yaml").write_text(flat)
    with pytest.warns(FutureWarning, match="model.preset -> model.architecture.preset"):
        (_, _, text, flag) = renamed_arguments(
            ["fit", "--config", str(tmp_path / "flat.yaml"), "--model.keep_epoch_checkpoints=true"]
        )
    assert yaml.safe_load(text)["model"] == {
        "architecture": {"preset": "lite", "image_detail": True},
        "checkpoints": {"monitor": "val_loss"},
    }
    assert flag == "--model.checkpoints.keep_epochs=true"
    # A checkpoint's hyper-parameters with the former names, flat.
    hparams = task_hparams(
        {
            "hyper_parameters": {
                "air_stem": "linear",
                "air_weights": None,
                "preset": "lite",
                "monitor": "val_loss",
                "loss": {"aux_weights": {"final": 1.0}},
            },
            "dualstream_geo": {"format": 2},
        }
    )
    assert hparams["architecture"]["aux_stem"] == "linear" and "air_stem" not in hparams
    assert hparams["architecture"]["preset"] == "lite" and "preset" not in hparams
    # Settings added since are read as what those checkpoints had.
    assert hparams["architecture"]["context"] == "window"
    assert hparams["checkpoints"] == {"monitor": "val_loss"}
    assert "aux_weights" in hparams and hparams["loss"] == {"head_weights": {"final": 1.0}}


def test_aihub_yaml_builds_on_original_layout(tmp_path: Path) -> None:
    from .test_data_inputs import write_original_tree

    write_original_tree(tmp_path / "aihub", georeferenced_aux=True, size=512)
    config = yaml.safe_load((REPO / "experiments" / "aihub.yaml").read_text())
    assert config["trainer"]["precision"] == "16-mixed"  # the original's fp16 autocast (CUDA)
    cli = DualStreamCLI(
        DualStreamSegmentation,
        DualStreamDataModule,
        run=False,
        args=[
            "--config",
            str(REPO / "experiments" / "aihub.yaml"),
            f"--data.root={tmp_path / 'aihub'}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.precision=32-true",
        ],
    )
    h, d = cli.model.hparams, cli.datamodule
    loss, a = cli.model.loss_settings, cli.model.architecture
    assert (a.preset, h["task"], a.use_boundary_refine) == ("original", "binary", False)
    assert (h["lr"], h["weight_decay"], h["freeze_epochs"], h["min_lr"]) == (3e-4, 1e-5, 2, 1e-6)
    assert (loss.focal_weight, loss.lovasz_weight, loss.focal_alpha, loss.focal_gamma) == (
        0.5,
        0.5,
        0.25,
        2.0,
    )
    assert (loss.lovasz_form, h["lr_schedule"]) == ("original", "original")
    assert loss.head_weights == {"final": 1.0, "aux_f2": 0.3, "aux_f3": 0.15}
    spec = cli.model.input_spec
    assert (spec.normalization, d.sampling.kind, d.train_aug) == ("original", "tiles", None)
    assert spec.aux_names == ["gems", "air_pollution"] and spec.minmax_groups() == [12] * 4
    assert cli.trainer.max_epochs == 42 and (d.patch_size, d.batch_size) == (512, 4)
    assert cli.trainer.gradient_clip_val is None
    assert [g["lr"] for g in cli.model.param_groups()] == pytest.approx([3e-5, 1.5e-4, 3e-4, 3e-4])
    assert sum(p.numel() for p in cli.model.model.parameters()) == 32_175_240
    cli.datamodule.setup("fit")
    assert cli.datamodule.train_dataset is not None and cli.datamodule.val_dataset is not None
    assert len(list(cli.datamodule.train_sampler)) == 2  # the two training tiles


def demo_fit(demo_root: Path, root: Path, *extra: str) -> list[str]:
    """``fit`` on the demo config with the run (and its statistics) under ``root``."""
    return [
        "fit",
        "--config",
        str(REPO / "experiments" / "demo.yaml"),
        f"--data.root={demo_root}",
        f"--trainer.default_root_dir={root}",
        f"--data.stats_path={root / 'stats.json'}",
        *extra,
    ]


def test_cli_errors_are_one_line(
    demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = demo_fit(demo_root, tmp_path, "--data.classes.map={90: 2}")
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "dualstream-geo: error: classes.map maps to class 2, but classes.names has 2 classes"
    )
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
    # Failing after the statistics were computed: nothing of the failed run is left.
    assert (
        run_cli([*args[:-1], "--data.classes.map={999: 1}", "--data.classes.unmapped=ignore"]) == 2
    )
    assert "the train split has no labelled pixel" in capsys.readouterr().err
    assert not (tmp_path / "stats.json").exists()
    assert not (tmp_path / "checkpoints" / "config.yaml").exists()
    assert run_cli(["fit", "--data.root=/nowhere/at/all"]) == 2
    assert "root '/nowhere/at/all' is not a folder" in capsys.readouterr().err
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00not a checkpoint" * 64)
    assert run_cli([*args[:-1], f"--ckpt_path={junk}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.ckpt: not a readable training checkpoint" in err[0]
    # A bad flag or config value: one line naming it, no usage dump; a preset that does
    # not exist among them.
    for flag, named in (
        ("--model.no_such_key=1", "no_such_key"),
        ("--model.architecture.preset=huge", "preset"),
    ):
        config = ["--config", str(REPO / "experiments" / "demo.yaml")]
        assert run_cli(["fit", *config, flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dualstream-geo: error: ") and named in err[0]


def test_precision_defaults_to_32_bit_on_cpu() -> None:
    if not torch.cuda.is_available():
        assert default_precision() == "32-true"


def test_demo_quick(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    report = (out / "report.md").read_text()
    assert "| dual-stream (image + air) |" in report and "| image only (air absent) |" in report
    for path in (
        "checkpoints/best.ckpt",
        "image_only/checkpoints/best.ckpt",
        "prediction.tif",
        "preview.png",
        "training_curves.png",
        "stats.json",
    ):
        assert (out / path).exists(), path
    import rasterio

    with (
        rasterio.open(out / "prediction.tif") as pred,
        rasterio.open(out / "data" / "test" / "image" / "scene_b.tif") as img,
    ):
        assert pred.crs == img.crs and pred.transform == img.transform and pred.shape == img.shape
        assert np.all((pred.read(1) == 255) == (img.read(1) == 0))


class KillAt(Callback):
    """Stops the run abruptly when ``global_step`` reaches ``step`` (as a kill would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: Trainer, module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("killed")


def test_killed_run_resumes_to_the_uninterrupted_result(demo_root: Path, tmp_path: Path) -> None:
    """Augmentation, random patches and drop-path on; killed mid-epoch, resumed from the
    copied run folder with its last.ckpt: the same final weights and best score."""
    import shutil

    from lightning.pytorch import seed_everything

    def run(root: Path, callbacks: list[Callback], ckpt: str | None = None) -> Trainer:
        seed_everything(0, verbose=False)
        task, datamodule = tiny(demo_root, root, freeze_epochs=1, preset="lite")
        datamodule.train_aug = DualStreamAugmentation()
        fit = trainer(root, epochs=3, callbacks=callbacks)
        fit.fit(task, datamodule, ckpt_path=ckpt)
        return fit

    reference = run(tmp_path / "whole", [])
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "killed", [KillAt(5)])  # 2 steps per epoch: the last step of epoch 2
    shutil.copytree(tmp_path / "killed", tmp_path / "moved")
    resumed = run(tmp_path / "moved", [], str(tmp_path / "moved" / "checkpoints" / "last.ckpt"))
    expected = reference.lightning_module.state_dict()
    for name, value in resumed.lightning_module.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert (
        resumed.checkpoint_callback.best_model_score
        == reference.checkpoint_callback.best_model_score
    )
    assert (
        Path(resumed.checkpoint_callback.best_model_path).parent
        == tmp_path / "moved" / "checkpoints"
    )
    last = torch.load(tmp_path / "moved" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2  # rewritten at the end of every epoch


def test_ckpt_path_last_resumes_or_refuses(
    demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = demo_fit(
        demo_root,
        tmp_path,
        "--model.architecture.vision_encoder=segformer-b0",
        "--model.architecture.preset=lite",
        "--data.length=8",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
    )
    assert run_cli([*args, "--trainer.max_epochs=1", "--ckpt_path=last"]) == 2
    assert "--ckpt_path last: no " in capsys.readouterr().err
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert run_cli([*args, "--trainer.max_epochs=1"]) == 0
    assert run_cli([*args, "--trainer.max_epochs=2", "--ckpt_path=last"]) == 0
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 1  # continued with epoch 1, not from epoch 0


def test_ctrl_c_during_fit_exits_130(demo_root: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    args = demo_fit(
        demo_root,
        tmp_path,
        "--model.architecture.vision_encoder=segformer-b0",
        "--model.architecture.preset=lite",
        "--trainer.max_epochs=50",
        "--trainer.enable_progress_bar=false",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from dualstream_geo.cli import main; sys.exit(main())",
            *args,
        ],
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background commands with SIGINT ignored, and
        # Python keeps an ignored SIGINT: the suite run as `make test &` must still test Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / "checkpoints" / "config.yaml").exists() and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # inside the training loop
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()  # a failed test must not leave a 50-epoch fit running
            process.wait()
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "dualstream-geo: interrupted"


def test_a_diverged_run_stops_at_the_first_non_finite_loss(demo_root: Path, tmp_path: Path) -> None:
    """A NaN loss would make every weight NaN at the optimizer step and the run would score
    0 for its whole budget: fit stops at that step with one line naming it."""
    from lightning.pytorch import Callback

    class Poison(Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, index: int) -> None:
            if trainer.global_step == 1:
                batch["image"][0, 0, 0, 0] = float("nan")

    task, datamodule = tiny(demo_root, tmp_path)
    with pytest.raises(DualStreamError, match=r"training loss is nan at step 1 \(epoch 0\)"):
        trainer(tmp_path, 1, [Poison()]).fit(task, datamodule)
    assert torch.isfinite(next(task.parameters())).all()  # stopped before the step
