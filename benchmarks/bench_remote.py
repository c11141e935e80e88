"""Remote rasters: the same scene as local COGs and served over loopback HTTP (range
requests, by a server this script starts on 127.0.0.1).

1. Join samples/s (patch 256, batch 8, DataLoader workers 0 and 2): local files, the URLs
   with the project's GDAL settings, and TorchGeo's plain intersection of RasterDatasets
   from the same URLs (in a process without the project's settings).
2. HTTP requests and bytes per sample, against the bytes the sample needs (its pixels in the
   files' data types).
3. Prediction windows/s, local against remote.

Targets: remote within 1.5x of local on loopback; at least 3x TorchGeo's remote
throughput; bytes per sample within 1.5x of what the sample needs.

    python benchmarks/bench_remote.py [--size 2048] [--samples 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio.shutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.http_server: the loopback range server

PATCH, BATCH = 256, 8


def to_cogs(folder: Path) -> None:
    """Rewrite every GeoTIFF under ``folder`` as a COG (in place)."""
    for path in folder.rglob("*.tif"):
        tmp = path.with_suffix(".cog")
        rasterio.shutil.copy(path, tmp, driver="COG", compress="DEFLATE", blocksize=256)
        tmp.replace(path)


def project_loader(scene: str, samples: int, workers: int) -> float:
    """Samples/s of the project's join over ``scene`` (a folder or a base URL)."""
    from torch.utils.data import DataLoader
    from torchgeo.samplers import RandomGeoSampler

    from dualstream_geo.data import GEMS, AirPollution, DualStreamGeoDataset, SatelliteImage
    from dualstream_geo.data.join import collate_samples

    dataset = DualStreamGeoDataset(
        SatelliteImage([f"{scene}/image/bench.tif"]),
        [
            GEMS([f"{scene}/gems/GEMS_bench.tif"]),
            AirPollution([f"{scene}/air/AIR_Pollution_CO_bench.tif"]),
        ],
    )
    sampler = RandomGeoSampler(dataset, size=PATCH, length=samples)
    return _rate(
        DataLoader(dataset, BATCH, sampler=sampler, num_workers=workers, collate_fn=collate_samples)
    )


def torchgeo_loader(scene: str, samples: int, workers: int) -> float:
    """Samples/s of TorchGeo's own intersection of RasterDatasets over the same URLs."""
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import RandomGeoSampler

    def raster(url: str, image: bool) -> RasterDataset:
        dataset = RasterDataset(paths=[f"/vsicurl/{url}"])
        dataset.is_image = image
        return dataset

    dataset = raster(f"{scene}/image/bench.tif", True)
    for name in (
        "gems/GEMS",
        "air/AIR_Pollution_CO",
        "air/AIR_Pollution_NO2",
        "air/AIR_Pollution_SO2",
    ):
        dataset = dataset & raster(f"{scene}/{name}_bench.tif", True)  # type: ignore[assignment]
    sampler = RandomGeoSampler(dataset, size=PATCH, length=samples)
    return _rate(
        DataLoader(dataset, BATCH, sampler=sampler, num_workers=workers, collate_fn=stack_samples)
    )


def _rate(loader: object) -> float:
    iterator = iter(loader)  # type: ignore[call-overload]
    next(iterator)  # headers, workers and caches
    start, count = time.perf_counter(), 0
    for batch in iterator:
        count += len(batch["image"])
    return count / (time.perf_counter() - start)


def child(kind: str, scene: str, samples: int, workers: int) -> float:
    """Run one loader in a fresh process (cold caches; TorchGeo without our settings)."""
    args = [sys.executable, __file__, "--child", kind, scene, str(samples), str(workers)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return float(done.stdout.strip().splitlines()[-1])


def sample_bytes(scene: Path) -> float:
    """Bytes of one patch's pixels in each file's data type: the windows of every file that
    cover a patch at the image's centre."""
    import numpy as np
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    with rasterio.open(scene / "image" / "bench.tif") as src:
        x0, y0 = src.xy(src.height // 2, src.width // 2)
        half = PATCH * src.res[0] / 2
        bounds, crs = (x0 - half, y0 - half, x0 + half, y0 + half), src.crs
    total = 0.0
    for name in (
        "image/",
        "gems/GEMS_",
        *(f"air/AIR_Pollution_{p}_" for p in ("CO", "NO2", "SO2")),
    ):
        with rasterio.open(scene / f"{name}bench.tif") as src:
            window = from_bounds(*transform_bounds(crs, src.crs, *bounds), src.transform)
            pixels = max(1.0, np.ceil(window.width)) * max(1.0, np.ceil(window.height))
            total += pixels * src.count * np.dtype(src.dtypes[0]).itemsize
    return total


def windows_per_s(scene: Path, where: str, output: Path) -> float:
    """Whole-scene prediction (random lite weights, tile 256) from ``where``: windows/s."""
    from bench_predict import predictor

    from dualstream_geo.inference import strips

    p = predictor(scene, 256, "hann", None)
    image = [f"{where}/image/bench.tif"]
    air = [f"{where}/gems/GEMS_bench.tif", f"{where}/air/AIR_Pollution_CO_bench.tif"]
    start = time.perf_counter()
    p.predict(image, air, output)
    elapsed = time.perf_counter() - start
    with rasterio.open(output) as src:
        windows = sum(len(s) for s in strips(src.height, src.width, 256, p.overlap))
    return windows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--child", nargs=4, metavar=("KIND", "SCENE", "SAMPLES", "WORKERS"))
    args = parser.parse_args()
    if args.child:
        kind, scene, samples, workers = args.child
        loader = torchgeo_loader if kind == "torchgeo" else project_loader
        print(loader(scene, int(samples), int(workers)))
        return

    from bench_predict import make_scene

    from tests.http_server import serve

    report: dict[str, object] = {"patch": PATCH, "batch": BATCH, "samples": args.samples}
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp), args.size)
        to_cogs(scene)
        with serve(scene) as (url, traffic):
            for workers in (0, 2):
                local = child("project", str(scene), args.samples, workers)
                before = (traffic.requests, traffic.bytes)
                remote = child("project", url, args.samples, workers)
                requests = traffic.requests - before[0]
                sent = traffic.bytes - before[1]
                plain = child("torchgeo", url, args.samples, workers)
                report[f"workers_{workers}"] = {
                    "local_samples_per_s": round(local, 2),
                    "remote_samples_per_s": round(remote, 2),
                    "torchgeo_remote_samples_per_s": round(plain, 2),
                    "local_over_remote": round(local / remote, 2),
                    "remote_over_torchgeo": round(remote / plain, 2),
                    "requests_per_sample": round(requests / (args.samples + BATCH), 2),
                    "bytes_per_sample": round(sent / (args.samples + BATCH)),
                }
            needed = sample_bytes(scene)
            report["bytes_the_sample_needs"] = round(needed)
            report["prediction_windows_per_s"] = {
                "local": round(windows_per_s(scene, str(scene), Path(tmp) / "local.tif"), 2),
                "remote": round(windows_per_s(scene, url, Path(tmp) / "remote.tif"), 2),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
