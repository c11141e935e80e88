"""Data throughput: the dual-stream join vs TorchGeo's plain intersection vs raw reads.

(a) DualStreamGeoDataset: image + mask at image resolution, air at 1/8, each on its own grid.
(b) TorchGeo's ``image & mask & gems & co & no2 & so2`` IntersectionDataset: every member is
    resampled to the image resolution, so the 48 air bands are read at full resolution.
(c) The floor: rasterio windowed reads of the same windows, no reprojection (sources
    already on the image grid), no join.

(a) and (b) run on the demo scenes as generated (labels in another CRS, air in EPSG:4326);
(a) and (c) also on a copy whose label and air rasters were warped onto the image grid
(air at 8x the pixel size), where no reprojection is needed.

    python benchmarks/bench_data.py [--samples 48] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.warp import Resampling, reproject
from rasterio.windows import from_bounds
from torch.utils.data import DataLoader
from torchgeo.datasets import IntersectionDataset, RasterDataset
from torchgeo.datasets.utils import stack_samples

from dualstream_geo.data import (
    GEMS,
    AirPollution,
    DualStreamGeoDataset,
    LandCoverMask,
    SatelliteImage,
    collate_samples,
    make_demo_scenes,
)
from dualstream_geo.data.synthetic import SceneSpec
from dualstream_geo.data.warp_cache import warp_once


class PlainImage(RasterDataset):
    filename_glob = "*.tif"


class PlainMask(RasterDataset):
    filename_glob = "*.tif"
    is_image = False


class PlainGEMS(RasterDataset):
    filename_glob = "GEMS_*.tif"


def plain_pollutant(gas: str) -> type[RasterDataset]:
    return type(f"Plain{gas}", (RasterDataset,), {"filename_glob": f"AIR_Pollution_{gas}_*.tif"})


def plain_intersection(folder: Path) -> IntersectionDataset:
    ds: Any = PlainImage(folder / "image") & PlainMask(folder / "label")
    ds = ds & PlainGEMS(folder / "gems")
    for gas in ("CO", "NO2", "SO2"):
        ds = ds & plain_pollutant(gas)(folder / "air")
    return ds


def join(folder: Path) -> DualStreamGeoDataset:
    return DualStreamGeoDataset(
        SatelliteImage(folder / "image"),
        [GEMS(folder / "gems"), AirPollution(folder / "air")],
        LandCoverMask(folder / "label"),
    )


def warp_onto_image_grid(source: Path, target: Path) -> None:
    """Copy a demo split with label and air warped onto the image grid (air at 8x pixels)."""
    image = next((source / "image").glob("*.tif"))
    with rasterio.open(image) as src:
        crs, transform, height, width = src.crs, src.transform, src.height, src.width
        (target / "image").mkdir(parents=True)
        (target / "image" / image.name).write_bytes(image.read_bytes())
    for sub, scale, resampling in (
        ("label", 1, Resampling.nearest),
        ("gems", 8, Resampling.bilinear),
        ("air", 8, Resampling.bilinear),
    ):
        (target / sub).mkdir()
        for path in (source / sub).glob("*.tif"):
            with rasterio.open(path) as src:
                out = np.zeros((src.count, height // scale, width // scale), dtype=src.dtypes[0])
                dst_transform = transform * transform.scale(scale)
                reproject(
                    rasterio.band(src, list(range(1, src.count + 1))),
                    out,
                    dst_transform=dst_transform,
                    dst_crs=crs,
                    resampling=resampling,
                )
                profile = src.profile | {
                    "crs": crs,
                    "transform": dst_transform,
                    "height": out.shape[1],
                    "width": out.shape[2],
                    "blockxsize": 256,
                    "blockysize": 256,
                }
            with rasterio.open(target / sub / path.name, "w", **profile) as dst:
                dst.write(out)


class RawReads(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Windowed reads of image, label and the four air files; no CRS logic at all."""

    def __init__(self, folder: Path, queries: list[tuple[slice, slice]]) -> None:
        self.files = {
            "image": next((folder / "image").glob("*.tif")),
            "label": next((folder / "label").glob("*.tif")),
            "air": sorted((folder / "gems").glob("*.tif")) + sorted((folder / "air").glob("*.tif")),
        }
        self.queries = queries
        self.handles: dict[Path, Any] = {}

    def _open(self, path: Path) -> Any:
        if path not in self.handles:
            self.handles[path] = rasterio.open(path)
        return self.handles[path]

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x, y = self.queries[i]
        bounds = (x.start, y.start, x.stop, y.stop)

        def read(path: Path) -> np.ndarray:
            src = self._open(path)
            return src.read(
                window=from_bounds(*bounds, src.transform).round_offsets().round_lengths()
            )

        return {
            "image": torch.from_numpy(read(self.files["image"]).astype(np.float32)),
            "mask": torch.from_numpy(read(self.files["label"]).astype(np.int64)[0]),
            "air": torch.from_numpy(
                np.concatenate([read(p) for p in self.files["air"]]).astype(np.float32)
            ),
        }


def throughput(
    dataset: Any, queries: list[Any], workers: int, collate: Any, batch: int = 8
) -> float:
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=queries,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=False,
    )
    iterator = iter(loader)
    next(iterator)  # worker start-up and file opening are not throughput
    start = time.perf_counter()
    count = 0
    for item in iterator:
        count += len(item["image"])
    return count / (time.perf_counter() - start)


def snapped(
    dataset: DualStreamGeoDataset, patch: int, count: int, step: int = 8
) -> list[tuple[slice, slice]]:
    """Random patches whose corners lie on the air grid (multiples of 8 image pixels)."""
    xmin, ymin, xmax, ymax = dataset.index.total_bounds
    res = dataset.res[0]
    rng = np.random.default_rng(0)
    cols = rng.integers(0, int((xmax - xmin) / res - patch) // step, count) * step
    rows = rng.integers(0, int((ymax - ymin) / res - patch) // step, count) * step
    return [
        (
            slice(xmin + c * res, xmin + (c + patch) * res),
            slice(ymax - (r + patch) * res, ymax - r * res),
        )
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    ]


def cache_rows(samples: int, out: Path) -> dict[str, Any]:
    """Warp once (issue 29): the join over a warped-once copy of the reprojected scene
    against raw reads of an aligned copy, patch 512, and the scaling with loader workers."""
    spec = SceneSpec("bench", "EPSG:32652", 330_000.0, 4_160_000.0, 1536, "EPSG:5186", 12.5, False)
    make_demo_scenes(out / "demo", scenes=(spec,))
    scenes = out / "demo" / "train"
    aligned = out / "aligned"
    if not aligned.exists():
        warp_onto_image_grid(scenes, aligned)
    ours = join(scenes)
    start = time.perf_counter()
    cached = warp_once(ours, str(out / "cache"))
    build = time.perf_counter() - start
    queries = snapped(ours, 512, samples + 8)
    raw = RawReads(aligned, [q[:2] for q in queries])
    results: dict[str, Any] = {"cache_build_s": round(build, 2)}
    for workers in (0, 1, 2, 4):
        row = {
            "join_reprojecting": throughput(ours, queries, workers, collate_samples),
            "join_cached": throughput(cached, queries, workers, collate_samples),
            "raw_reads_aligned": throughput(raw, list(range(len(queries))), workers, stack_samples),
        }
        row["cached_vs_raw"] = row["join_cached"] / row["raw_reads_aligned"]
        row["cached_vs_reprojecting"] = row["join_cached"] / row["join_reprojecting"]
        results[f"patch512_workers{workers}"] = {k: round(v, 2) for k, v in row.items()}
        print(f"workers {workers}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return results


def run(samples: int, out: Path) -> dict[str, Any]:
    spec = SceneSpec("bench", "EPSG:32652", 330_000.0, 4_160_000.0, 1536, "EPSG:5186", 12.5, False)
    make_demo_scenes(out / "demo", scenes=(spec,))
    scenes = out / "demo" / "train"
    aligned = out / "aligned"
    if not aligned.exists():
        warp_onto_image_grid(scenes, aligned)
    results: dict[str, Any] = {}
    for patch in (256, 512):
        ours = join(scenes)
        queries = snapped(ours, patch, samples + 8)
        plain = plain_intersection(scenes)
        ours_aligned = join(aligned)
        raw = RawReads(aligned, [q[:2] for q in queries])
        for workers in (0, 2):
            row = {
                "join": throughput(ours, queries, workers, collate_samples),
                "torchgeo_intersection": throughput(plain, queries, workers, stack_samples),
                "join_aligned": throughput(ours_aligned, queries, workers, collate_samples),
                "raw_reads_aligned": throughput(
                    raw, list(range(len(queries))), workers, stack_samples
                ),
            }
            row["join_vs_intersection"] = row["join"] / row["torchgeo_intersection"]
            row["raw_time_ratio"] = row["raw_reads_aligned"] / row["join_aligned"]
            results[f"patch{patch}_workers{workers}"] = row
            print(
                f"patch {patch} workers {workers}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in row.items())
            )
        sample_ours, sample_plain = ours[queries[0]], plain[queries[0]]
        results[f"patch{patch}_air_bytes"] = {
            "join": sample_ours["air"].numel() * 4,
            "torchgeo_intersection": (sample_plain["image"].shape[0] - 4) * patch * patch * 4,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", action="store_true", help="the warp-once rows only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        measure = cache_rows if args.cache else run
        results = measure(args.samples, args.out or Path(tmp))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
