"""ScenePredictor: streaming, blended sliding-window inference over whole scenes to GeoTIFF."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import __version__
from ..data.grid import Grid
from ..data.join import DualStreamGeoDataset
from ..data.remote import redact_text
from ..data.sources import Georef, SatelliteImage
from ..data.spec import InputSpec
from ..errors import DualStreamError
from ..memory import keep_freed_memory
from ..models import DualStreamDFormer
from ..models.dualstream import class_probabilities
from ..models.locality import CELL
from ..models.tta import tta_mean
from ..precision import inference_bf16
from ..training.loading import load_task
from ..training.stored import file_sha256
from .budget import check_window_memory
from .compiling import COMPILE_MIN_WINDOWS, compile_detail, detail_path
from .distributed import RankGroup, predict_on_ranks
from .fingerprint import input_fingerprint
from .inputs import AuxInputs, scene_dataset
from .locking import output_lock
from .outputs import (
    check_interrupted_parts,
    check_output_names,
    check_output_paths,
    output_specs,
    prediction_inputs,
    resumable_rows,
)
from .reading import scene_grid, window_batches, windows_extent
from .settings import COMPILE_CHOICES, KINDS, check_settings, default_batch_size
from .strips import StripSums
from .tiling import Layout, default_margin, default_overlap, grid_layout
from .writer import OutputSpec, create_partial, finalize, write_blended, write_progress

PathLike = str | os.PathLike[str]


class ScenePredictor:
    """Whole-scene inference with sliding windows, written as GeoTIFF.

    A model with local context (:mod:`~dualstream_geo.models.locality`, new models) is
    given windows on the CRS-anchored cell lattice, each keeping its centre beyond a
    ``margin`` of context: a pixel gets the class it gets in one window over the whole scene
    (``experiments/invariance.py``). Models whose attention and normalisation span the
    window (imported original checkpoints, older ones) get Hann-blended overlapping windows
    from the scene's corner. Memory stays flat in scene area: only the accumulator rows of
    the strip in progress (classes x tile x scene width) are held, and finished rows are
    written as they complete.

    Args:
        model_or_task: a trained task or its DualStreamDFormer (then give ``spec``).
        tile: window side in px, a multiple of 32.
        overlap: share of a window its neighbours overlap (default: none beyond the
            margins for local context, 0.34 for window context).
        batch_size: windows per forward pass (default: on a CPU about 1 Mpx, 4 windows of
            512 px (:data:`~dualstream_geo.inference.settings.CPU_BATCH_PIXELS`); 8 on a
            GPU).
        blend: weights of overlapping windows: ``hann``, ``linear`` or ``none``.
        tta: test-time augmentation: ``none``, ``flip`` or ``d4``.
        device: the torch device (default: CUDA when present).
        workers: loader processes reading windows (0: a prefetching thread).
        spec: the input spec, when ``model_or_task`` does not carry one.
        precision: ``auto`` (bf16 autocast where the device computes bf16 natively:
                :func:`~dualstream_geo.precision.native_bf16`), ``32`` or ``bf16``.
        margin: context px at each window edge whose predictions are not used (default:
            64 px, at most tile/4, for local context; tile/8 for window context).
        compile: ``auto`` (compile a depthwise detail path on a CPU for scenes of at least
            :data:`~dualstream_geo.inference.compiling.COMPILE_MIN_WINDOWS` windows),
            ``always`` or ``never`` (:mod:`~dualstream_geo.inference.compiling`).

    Raises:
        DualStreamError: a setting out of range, or a model without its input spec.
    """

    def __init__(
        self,
        model_or_task: nn.Module,
        tile: int = 512,
        overlap: float | None = None,
        batch_size: int | None = None,
        blend: str = "hann",
        tta: str = "none",
        device: str | torch.device | None = None,
        workers: int = 0,
        spec: InputSpec | None = None,
        precision: str = "auto",
        margin: int | None = None,
        compile: str = "auto",
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        check_settings(tile, overlap, batch_size, blend, tta, workers, precision)
        batch_size = default_batch_size(self.device, tile) if batch_size is None else batch_size
        if compile not in COMPILE_CHOICES:
            raise DualStreamError(f"compile must be one of {COMPILE_CHOICES}, got {compile!r}")
        self.compile = compile
        spec = spec or getattr(model_or_task, "input_spec", None)
        if not isinstance(spec, InputSpec):
            raise DualStreamError(
                "give a checkpoint (ScenePredictor.from_checkpoint), a trained task, or the "
                "model with spec=InputSpec(...) carrying band statistics"
            )
        self.spec: InputSpec = spec
        model = getattr(model_or_task, "model", model_or_task)
        if not isinstance(model, DualStreamDFormer):
            raise DualStreamError(
                f"expected a DualStreamDFormer or its task, got {type(model).__name__}"
            )
        self.model: DualStreamDFormer = model
        self.checkpoint = ""
        self.checkpoint_sha256 = ""
        local = model.context == "local"
        self.margin = default_margin(tile, local) if margin is None else margin
        # A window keeps at least one lattice cell (local context) or one pixel.
        largest = (tile - CELL) // 2 if local else tile // 2 - 1
        if not 0 <= self.margin <= largest:
            raise DualStreamError(
                f"margin must lie in [0, {largest}] for --tile {tile}, got {self.margin}"
            )
        self.overlap = default_overlap(local) if overlap is None else overlap
        self.tile, self.batch_size = tile, batch_size
        self.blend, self.tta, self.workers = blend, tta, workers
        self.bf16 = inference_bf16(self.device, precision)
        if self.device.type == "cpu":  # a batch's maps are hundreds of MB (memory.py)
            keep_freed_memory()
        self.model.eval().to(self.device)
        # On a CPU, channels-last tensors pay in bf16 (oneDNN's convolutions: 1.05-1.19x on
        # the zion_dem.yaml model) and, in fp32 too, for a depthwise detail path, whose
        # per-pixel LayerNorm then needs no copies at full resolution (1.20x; with the dense
        # path in fp32: -7 % to +6 %): benchmarks/README.md.
        depthwise = detail_path(self.model) is not None
        self.channels_last = self.device.type == "cpu" and (self.bf16 or depthwise)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @classmethod
    def from_checkpoint(cls, checkpoint: PathLike, **kwargs: Any) -> ScenePredictor:
        """Load a training checkpoint.

        Weights and the input spec: bands, statistics, aux sources, classes.

        Args:
            checkpoint: the ``.ckpt`` file.
            **kwargs: the predictor's settings (device, tile, batch size, ...).

        Returns:
            The predictor.

        Raises:
            DualStreamError: a missing or unreadable checkpoint, or a bad setting.
        """
        predictor = cls(load_task(checkpoint), **kwargs)
        predictor.checkpoint = str(checkpoint)
        predictor.checkpoint_sha256 = file_sha256(checkpoint)
        return predictor

    # -- inputs --------------------------------------------------------------------------
    def dataset(
        self,
        image: SatelliteImage | Sequence[PathLike],
        aux: AuxInputs = None,
        fallback: Georef | None = None,
        allow_shift: bool = False,
    ) -> DualStreamGeoDataset:
        """The joined, checked inputs of a scene.

        Args:
            image: the image source, or its files or folders.
            aux: the aux sources or their paths by name (``{"elevation": [...]}``); sources
                in the spec's order; or the paths of the original preset's GEMS and
                air-pollution files together.
            fallback: footprints for original-layout tiles without georeferencing.
            allow_shift: predict an image whose values cannot be the training data's
                sensor and scaling (:func:`~dualstream_geo.data.checks.check_value_shift`).

        Returns:
            The scene's dataset, normalised as the model was trained.

        Raises:
            DualStreamError: an input that does not fit the checkpoint, named.
        """
        return scene_dataset(self.spec, image, aux, fallback, allow_shift)

    # -- model ---------------------------------------------------------------------------
    @torch.inference_mode()
    def probabilities(self, image: Tensor, air: Tensor | None) -> Tensor:
        """(B, C, H, W) probabilities averaged over the TTA transforms.

        Args:
            image: (B, C, H, W) normalised image windows.
            air: (B, A, H/s, W/s) normalised aux windows, or None for the image alone.

        Returns:
            (B, K, H, W) class probabilities.
        """
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)

        def once(image: Tensor, air: Tensor | None) -> Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.model(image, air)["final"]
            return class_probabilities(logits, self.model.task)

        return tta_mean(once, image, air, self.tta)

    # -- prediction ----------------------------------------------------------------------
    def predict(
        self,
        image: DualStreamGeoDataset | SatelliteImage | Sequence[PathLike],
        aux: AuxInputs,
        output: PathLike,
        kind: str = "class",
        overwrite: bool = False,
        resume: bool = False,
        progress_callback: Callable[[int, int], None] | None = None,
        group: RankGroup | None = None,
    ) -> Path:
        """Predict the scene of ``image`` to ``output`` and return its path.

        ``image``/``aux`` are sources or paths (files or folders; see :meth:`dataset`), or
        ``image`` is what :meth:`dataset` made of them. ``kind``: ``class``
        (uint8 classes with a colour table), ``probabilities`` (uint8, value/254 per class)
        or ``both`` (``<output>`` and ``<stem>_probabilities.tif``). ``progress_callback``
        receives (rows written, scene height) after each strip. ``group``: this process is
        one of several sharing the scene (:func:`~.distributed.predict_on_ranks`).

        Args:
            image: the image source, its paths, or the dataset :meth:`dataset` made.
            aux: the aux sources or paths, by source name.
            output: the GeoTIFF to write.
            kind: ``class``, ``probabilities`` or ``both``.
            overwrite: replace an existing output.
            resume: finish an interrupted run's partial output.
            progress_callback: receives (rows written, scene height) after each strip.
            group: the processes sharing the scene, or None for this one alone.

        Returns:
            The output's path.

        Raises:
            DualStreamError: bad inputs or settings, an output that exists or would replace an
                input, or a failed write (named).
        """
        if kind not in KINDS:
            raise DualStreamError(f"kind must be one of {KINDS}, got {kind!r}")
        output = str(output)
        dataset = image if isinstance(image, DualStreamGeoDataset) else self.dataset(image, aux)
        grid = scene_grid(dataset.image)
        layout = self.layout(grid)
        check_window_memory(layout.tile, self.batch_size, self.device)
        settings = self.map_settings(layout)
        provenance = {
            "command": redact_text(" ".join(sys.argv)),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        specs = output_specs(
            output, kind, self.spec.class_names, self.spec.class_colors, {**settings, **provenance}
        )
        # Before the lock or any file is created: an output may never replace an input.
        check_output_names(specs, [*prediction_inputs(dataset), self.checkpoint])
        signature = {
            **settings,
            "kind": kind,
            "grid": [*grid.transform[:6], grid.height, grid.width],
            "inputs": input_fingerprint(dataset),
        }
        if group is not None:  # this rank's share of the scene

            def run(
                parts: list[OutputSpec], start: int, end: int, report: Callable[[int, int], None]
            ) -> None:
                self._run(dataset, grid, layout, parts, signature, start, report, end, False)

            starts = [max(strip[0].row, 0) for strip in layout.strips]
            check = partial(check_output_paths, specs, dataset, overwrite, resume)
            predict_on_ranks(
                group, grid, specs, signature, starts, output, check, run, resume, overwrite
            )
            return Path(specs[0].path)
        # Held from the existence checks to the final rename: no second run can interleave.
        with output_lock(output, take_over_stale=resume):
            check_output_paths(specs, dataset, overwrite, resume)
            check_interrupted_parts(specs, 1, resume, overwrite)
            rows_done = min(resumable_rows(s, signature) for s in specs) if resume else 0
            if rows_done == 0:
                for spec in specs:
                    create_partial(spec, grid)
            if rows_done < grid.height:
                self._run(dataset, grid, layout, specs, signature, rows_done, progress_callback)
            for spec in specs:
                finalize(spec)
        return Path(specs[0].path)

    def map_settings(self, layout: Layout) -> dict[str, str]:
        """What a map records of how it was made (GeoTIFF tags; a resumed run must match them).

        The checkpoint and its hash, the windows, blending, TTA, precision, version, and the
        pretrained vision weights the model started from.
        """
        settings = {
            "checkpoint": os.path.abspath(self.checkpoint) if self.checkpoint else "",
            "checkpoint_sha256": self.checkpoint_sha256,
            "tile": str(layout.tile),
            "overlap": str(self.overlap),
            "margin": str(layout.margin),
            "windows": "cell lattice" if layout.lattice else "scene corner",
            "blend": self.blend,
            "tta": self.tta,
            "precision": "bf16" if self.bf16 else "32",
            "dualstream_geo_version": __version__,
        }
        if self.model.vision_weights:  # the map says which pretrained weights it came from
            settings["vision_weights"] = self.model.vision_weights
        return settings

    def layout(self, grid: Grid) -> Layout:
        """Where the windows over ``grid`` lie (:func:`~.tiling.grid_layout`)."""
        local = self.model.context == "local"
        return grid_layout(grid, local, self.tile, self.overlap, self.margin, CELL)

    def _run(
        self,
        dataset: DualStreamGeoDataset,
        grid: Grid,
        layout: Layout,
        specs: list[OutputSpec],
        signature: dict[str, Any],
        rows_done: int,
        progress_callback: Callable[[int, int], None] | None,
        end: int | None = None,
        show_bar: bool = True,
    ) -> None:
        """Write rows ``rows_done`` to ``end`` with the windows of ``layout``.

        Write rows ``rows_done`` to ``end`` (the scene's height by default) with the windows
        of ``layout``, computing every window that overlaps them, in the order a whole-scene
        run computes them, so that each pixel's blended sum is the same bit for bit.
        """
        height, width, tile = grid.height, grid.width, layout.tile
        end = height if end is None else end
        rows_done = max(rows_done, 0)
        todo = [s for s in layout.strips if s[0].row + tile > rows_done and s[0].row < end]
        windows = [w for strip in todo for w in strip]
        # Accumulator columns from the first window's (left of the scene on the lattice).
        left = min((w.col for w in windows), default=0)
        span = max(max((w.col for w in windows), default=0) + tile - left, width)

        def write(first: int, scores: np.ndarray, weights: np.ndarray) -> None:
            write_blended(specs, first, scores, weights)
            done = first + scores.shape[1]
            for spec in specs:
                write_progress(spec, signature, done)
            if progress_callback is not None:
                progress_callback(done, height)

        sums = StripSums(
            self.spec.num_classes,
            tile,
            left,
            span,
            width,
            top=windows[0].row if windows else 0,
            rows_done=rows_done,
            end=end,
            write=write,
        )
        auto = self.device.type == "cpu" and len(windows) >= COMPILE_MIN_WINDOWS
        if self.compile == "always" or (self.compile == "auto" and auto):
            compile_detail(self.model)
        bar = tqdm(
            total=len(windows), unit="win", desc="predict", disable=None if show_bar else True
        )
        reading = window_batches(dataset, grid, windows, self.batch_size, self.workers)
        shared_warps = dataset.aux_rows_warped_once(windows_extent(grid, windows))
        with bar, shared_warps, reading as batches:
            for batch in batches:
                valid = batch["valid"]
                keep, probs = self._batch_probabilities(batch)
                position = 0
                for i, index in enumerate(batch["index"].tolist()):
                    window = windows[index]
                    if window.row > sums.top:
                        sums.flush(window.row)
                    if keep[i]:
                        assert probs is not None
                        w = layout.weights(window, height, width, self.blend)
                        sums.add(window.row, window.col, probs[position], w * valid[i].numpy())
                        position += 1
                    bar.update(1)
        sums.flush(sums.top + tile)

    def _batch_probabilities(self, batch: dict[str, Any]) -> tuple[Tensor, np.ndarray | None]:
        """Which windows of ``batch`` hold a valid pixel, and their class probabilities.

        Returns:
            (B,) bool, and the (N, K, H, W) probabilities of those N windows as an array
            (None when no window has a valid pixel).
        """
        keep = batch["valid"].flatten(1).any(1)
        if not keep.any():
            return keep, None
        air = batch["air"][keep].to(self.device) if "air" in batch else None
        image = batch["image"][keep].to(self.device)
        return keep, self.probabilities(image, air).cpu().numpy()
