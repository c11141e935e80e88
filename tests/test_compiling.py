"""Compiling the depthwise detail path: the same map, and eager where compiling fails."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from dualstream_geo.errors import DualStreamError
from dualstream_geo.inference import ScenePredictor, compiling
from dualstream_geo.inference.compiling import compile_detail, is_compiled
from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.models.settings import ArchitectureSettings
from dualstream_geo.training import DualStreamSegmentation, read_spec

WIDE = ArchitectureSettings(
    preset="lite",
    vision_encoder="segformer-b0",
    image_detail=True,
    detail_design="spectral_wide",
)


def wide_model() -> DualStreamDFormer:
    torch.manual_seed(0)
    return DualStreamDFormer(
        num_classes=3,
        task="multiclass",
        preset="lite",
        vision_encoder="segformer-b0",
        air_channels=2,
        image_detail=True,
        detail_design="spectral_wide",
    ).eval()


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="inductor compiles C++ on a CPU: no compiler here (the fallback is tested below)",
)
def test_compiled_detail_path_gives_the_eager_outputs_and_dense_paths_stay() -> None:
    model = wide_model()
    image, air = torch.randn(2, 4, 64, 64), torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        eager = model(image, air)
        assert compile_detail(model) and is_compiled(model)
        compiled = model(image, air)
        # Another batch size: no error, the same values. (A batch of 1 would compile again,
        # 10 s here: torch specialises sizes 0 and 1.)
        larger = model(image.repeat(2, 1, 1, 1)[:3], air.repeat(2, 1, 1, 1)[:3])
    for name in ("final", "aux_detail"):
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(larger["final"][:2], eager["final"], rtol=1e-4, atol=1e-5)
    dense = DualStreamDFormer(num_classes=3, task="multiclass", preset="lite", image_detail=True)
    assert not compile_detail(dense) and not is_compiled(dense)
    assert "forward" not in vars(dense.decoder.image_detail)


def test_a_failed_compilation_warns_once_and_runs_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inductor needs a C++ compiler on a CPU: where compiling fails the path runs as before."""

    def failing(function: Any, **kwargs: Any) -> Any:
        def run(*args: Any) -> Any:
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return run

    monkeypatch.setattr(compiling.torch, "compile", failing)
    model = wide_model()
    image, air = torch.randn(1, 4, 64, 64), torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        eager = model(image, air)["final"]
        compile_detail(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = model(image, air)["final"]
            second = model(image, air)["final"]
    messages = [str(w.message) for w in caught if "compiling the detail path" in str(w.message)]
    assert len(messages) == 1 and "InvalidCxxCompiler" in messages[0]
    assert not is_compiled(model)
    torch.testing.assert_close(first, eager, rtol=0, atol=0)
    torch.testing.assert_close(second, eager, rtol=0, atol=0)


def test_predict_compiles_where_asked_and_writes_the_same_map(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    spec = read_spec(torch.load(checkpoint, weights_only=True), checkpoint)
    torch.manual_seed(0)
    task = DualStreamSegmentation(input_spec=spec, architecture=WIDE)
    aux = {"gems": [scene["gems"]], "air_pollution": [scene["air"]]}
    maps = {}
    for mode in ("never", "auto", "always"):
        predictor = ScenePredictor(task, tile=128, precision="32", device="cpu", compile=mode)
        output = predictor.predict([scene["image"]], aux, tmp_path / f"{mode}.tif")
        # A 384 px scene is a few windows: "auto" leaves the path uncompiled.
        assert is_compiled(predictor.model) == (mode == "always")
        with rasterio.open(output) as written:
            maps[mode] = written.read(1)
    assert np.array_equal(maps["auto"], maps["never"])
    assert (maps["always"] == maps["never"]).mean() > 0.999
    with pytest.raises(DualStreamError, match="compile must be one of"):
        ScenePredictor(task, compile="sometimes")
