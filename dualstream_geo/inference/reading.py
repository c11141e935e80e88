"""Reading whole scenes window by window: the output grid, window samples, prefetching."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import numpy as np
import torch
from rasterio.warp import transform_bounds
from torch.utils.data import DataLoader, Dataset

from ..data.grid import Grid, open_raster
from ..data.join import DualStreamGeoDataset, collate_samples
from ..data.sources import SatelliteImage
from .tiling import Window


def scene_grid(image: SatelliteImage) -> Grid:
    """The output grid: the image file's own grid, or the mosaic of several files.

    The output grid: the image file's own grid, or for several files their mosaic on the
    first file's CRS, pixel size and pixel alignment. Read in float64 from the files.
    """
    paths = [image.channel_files(p)[0][0] for p in image.index.filepath]
    first = open_raster(paths[0])
    if len(paths) == 1:
        return Grid(first.crs, first.transform, first.height, first.width)
    t = first.transform
    bounds = np.array(
        [transform_bounds(open_raster(p).crs, first.crs, *open_raster(p).bounds) for p in paths]
    )
    col0 = np.floor((bounds[:, 0].min() - t.c) / t.a)
    col1 = np.ceil((bounds[:, 2].max() - t.c) / t.a)
    row0 = np.floor((bounds[:, 3].max() - t.f) / t.e)
    row1 = np.ceil((bounds[:, 1].min() - t.f) / t.e)
    return Grid.from_bounds(
        first.crs, t.c + col0 * t.a, t.f + row0 * t.e, t.a, -t.e, int(row1 - row0), int(col1 - col0)
    )


def window_grid(grid: Grid, window: Window) -> Grid:
    """The grid of ``window``'s pixels on ``grid`` (it may reach past the scene)."""
    return windows_extent(grid, [window])


def windows_extent(grid: Grid, windows: list[Window]) -> Grid:
    """The grid (on ``grid``'s pixels) that holds every window of ``windows``."""
    if not windows:
        return grid
    top, left = min(w.row for w in windows), min(w.col for w in windows)
    bottom = max(w.row + w.size for w in windows)
    right = max(w.col + w.size for w in windows)
    return grid.window(top, left, bottom - top, right - left)


class WindowDataset(Dataset[dict[str, Any]]):
    """Samples of the join on each window's grid, in strip order."""

    def __init__(self, dataset: DualStreamGeoDataset, grid: Grid, windows: list[Window]) -> None:
        self.dataset, self.grid, self.windows = dataset, grid, windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset.read(window_grid(self.grid, self.windows[index]))
        sample["index"] = torch.tensor(index)
        return sample


def prefetch(loader: DataLoader[Any], depth: int = 2) -> Generator[Any, None, None]:
    """Iterate ``loader`` in a background thread so reading runs ahead of the model.

    When the consumer stops early (an error, Ctrl-C, SIGTERM) the thread is told to stop
    and joined: a thread left inside torch or GDAL at interpreter exit aborts the process.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in loader:
                if not put(item):
                    return
        except BaseException as error:  # surfaced in the consumer
            put(error)
        put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


@contextmanager
def window_batches(
    dataset: DualStreamGeoDataset,
    grid: Grid,
    windows: list[Window],
    batch_size: int,
    workers: int = 0,
) -> Iterator[Iterable[dict[str, Any]]]:
    """The batches of ``windows``, read ahead by loader processes or a prefetching thread.

    Args:
        dataset: the scene's joined inputs.
        grid: the scene's grid.
        windows: the windows to read, in order.
        batch_size: windows per batch.
        workers: loader processes (0: a prefetching thread).

    Yields:
        The batches (:func:`~dualstream_geo.data.join.collate_samples`), each with the
        windows' ``index``.
    """
    loader = DataLoader(
        WindowDataset(dataset, grid, windows),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_samples,
    )
    if workers > 0:
        yield loader
        return
    # A prefetching generator left to the garbage collector on an error would join its
    # thread at interpreter exit, where a daemon thread never runs again (a hang).
    with closing(prefetch(loader)) as batches:
        yield batches
