"""Which machines compute in bf16 by default, and what bf16 changes in a map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.precision import cpu_bf16_flags, describe_cpu, native_bf16

from .conftest import LAND_COVER

X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd sve {extra}\n"


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        (X86.format(extra="avx512_bf16 avx512_vnni"), {"avx512_bf16"}),
        (X86.format(extra="amx_bf16 amx_tile avx512_bf16"), {"amx_bf16", "avx512_bf16"}),
        (X86.format(extra="avx512_vnni"), set()),  # Zen 3, Ice Lake: bf16 would be emulated
        (ARM.format(extra="i8mm bf16"), {"bf16"}),  # Graviton 3, Neoverse V1
        (ARM.format(extra="asimdhp"), set()),
        ("", set()),
    ],
)
def test_cpu_bf16_flags_read_the_cpu_features(tmp_path: Path, text: str, flags: set[str]) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert cpu_bf16_flags(str(cpuinfo)) == flags
    assert cpu_bf16_flags(str(tmp_path / "missing")) == frozenset()


def test_native_bf16_follows_the_device() -> None:
    assert native_bf16("cpu") == bool(cpu_bf16_flags())
    assert native_bf16("meta") is False
    assert ("no native bf16" in describe_cpu()) != native_bf16("cpu")


def test_bf16_autocast_keeps_the_logits_in_fp32() -> None:
    """Under bf16 autocast the model computes in bf16 but its class logits are fp32 (their
    8 significant bits would decide close classes by rounding); the classes agree with fp32
    on nearly every pixel."""
    torch.manual_seed(0)
    model = DualStreamDFormer(
        num_classes=4, task="multiclass", preset="lite", image_detail=True, air_channels=3
    ).eval()
    image, air = torch.randn(2, 4, 96, 96), torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        reference = model(image, air)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(image, air)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
            same = model(image, air)
    assert low["final"].dtype == torch.float32 and low["aux_f2"].dtype == torch.bfloat16
    torch.testing.assert_close(same["final"], reference["final"], rtol=0, atol=0)
    assert not torch.equal(low["final"], reference["final"])  # bf16 was used
    agree = (low["final"].argmax(1) == reference["final"].argmax(1)).float().mean()
    assert agree > 0.98


def test_the_spectral_detail_path_computes_in_fp32_under_autocast() -> None:
    """The spectral path (a fifth of the FLOP) keeps fp32 under bf16 autocast: given the
    same decoder features, its output and its head's logits are the fp32 ones exactly; the
    dense path's are bf16."""
    from dualstream_geo.models.detail import ImageDetail

    torch.manual_seed(0)
    image, decoded = torch.randn(1, 6, 48, 48), torch.randn(1, 16, 48, 48)
    for design, exact in (("spectral", True), ("dense", False)):
        path = ImageDetail(6, 16, num_outputs=4, design=design).eval()
        with torch.no_grad():
            reference, reference_logits = path(image, decoded)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                merged, logits = path(image, decoded.bfloat16())
        assert logits is not None and reference_logits is not None
        assert (merged.dtype == torch.float32) == exact
        if exact:
            torch.testing.assert_close(logits, reference_logits, rtol=0, atol=0)
            # bf16 decoder features, widened: the merge differs by their rounding only.
            torch.testing.assert_close(merged, reference, rtol=0.05, atol=0.05)
        else:
            assert not torch.equal(logits.float(), reference_logits)


@pytest.mark.parametrize("flags", [frozenset(), frozenset({"avx512_bf16"})])
def test_predictor_uses_bf16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, flags: frozenset[str]
) -> None:
    """``auto`` is fp32 on a CPU without native bf16 (as before issue 40) and bf16 on one
    with it; ``32`` is fp32 on both; ``bf16`` without it warns and stays fp32. Training on a
    CPU stays fp32 on both."""
    import warnings

    from dualstream_geo.data.spec import InputSpec
    from dualstream_geo.inference import ScenePredictor

    monkeypatch.setattr("dualstream_geo.precision.cpu_bf16_flags", lambda: flags)
    model = DualStreamDFormer(num_classes=2, task="binary", preset="lite", air_channels=48)
    spec = InputSpec()
    auto = ScenePredictor(model, spec=spec, device="cpu")
    assert auto.bf16 == bool(flags)
    assert not ScenePredictor(model, spec=spec, device="cpu", precision="32").bf16
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forced = ScenePredictor(model, spec=spec, device="cpu", precision="bf16")
    assert forced.bf16 == bool(flags)
    assert any("no native bf16" in str(w.message) for w in caught) == (not flags)
    # channels-last on a CPU: in bf16, and in fp32 for a depthwise (spectral) detail path.
    assert auto.channels_last == bool(flags)
    spectral = DualStreamDFormer(
        num_classes=2, task="binary", preset="lite", image_detail=True, detail_design="spectral"
    )
    assert ScenePredictor(spectral, spec=spec, device="cpu", precision="32").channels_last
    if not torch.cuda.is_available():
        from dualstream_geo.training.trainer_defaults import default_precision

        assert default_precision() == "32-true"  # training on a CPU: fp32 either way


@pytest.mark.parametrize("stage", ["validate", "test"])
def test_evaluation_runs_in_bf16_on_a_cpu_that_has_it(
    stage: str, checkpoint: Path, demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU with native bf16, ``validate`` and ``test`` score under bf16 autocast unless
    ``--trainer.precision`` says otherwise; ``fit`` stays fp32 there. (This machine's own
    flags decide the unpatched default, so the CPU is declared native here.)"""
    from dualstream_geo.cli import main
    from dualstream_geo.training import DualStreamSegmentation, trainer_defaults

    monkeypatch.setattr(trainer_defaults, "native_bf16", lambda device: device == "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trainer_defaults.default_precision("fit") == "32-true"
    assert trainer_defaults.default_precision(stage) == "bf16-mixed"
    assert trainer_defaults.default_precision(stage, "gpu") == "32-true"  # a GPU without bf16

    seen: list[torch.dtype | None] = []
    step = DualStreamSegmentation._shared_step

    def spy(task: DualStreamSegmentation, batch: Any, split: str, tta: str = "none") -> Any:
        bf16 = torch.is_autocast_enabled("cpu")
        seen.append(torch.get_autocast_dtype("cpu") if bf16 else None)
        return step(task, batch, split, tta)

    monkeypatch.setattr(DualStreamSegmentation, "_shared_step", spy)
    args = [
        stage,
        "--config",
        str(Path(__file__).parents[1] / "experiments" / "demo.yaml"),
        f"--data.root={demo_root}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--ckpt_path={checkpoint}",
        "--data.classes.names=[water, forest, shrub, grass, plot]",  # the checkpoint's
        f"--data.classes.map={LAND_COVER}",
        "--data.classes.colors=null",
        "--trainer.accelerator=cpu",
        f"--trainer.limit_{'val' if stage == 'validate' else 'test'}_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    for extra, dtype in (([], torch.bfloat16), (["--trainer.precision=32-true"], None)):
        seen.clear()
        assert main([*args, *extra]) == 0
        assert seen and set(seen) == {dtype}, (extra, seen)
