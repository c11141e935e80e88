"""Area estimation from a labelled sample: the estimator of Olofsson et al. (2014) against the
paper's worked example and an independent computation, the sample design's allocation, and
the sample-design -> label -> evaluate --sample workflow with its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

from dualstream_geo.cli import main
from dualstream_geo.errors import DualStreamError
from dualstream_geo.evaluation.area import stratified_estimate
from dualstream_geo.evaluation.sampling import allocate, draw_sample, largest_remainder

from .conftest import write_raster

#: Olofsson et al. (2014), section 5 (Tables 8-10): strata of 30 m pixels and the sample
#: counts by map class (rows) and reference class (columns).
NAMES = ["deforestation", "forest gain", "stable forest", "stable non-forest"]
PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
COUNTS = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])


def test_the_worked_example_of_olofsson_2014() -> None:
    estimate = stratified_estimate(COUNTS, PIXELS * 0.09, NAMES)  # 30 m = 0.09 ha
    # Table 9: estimated area proportions, to the 4 decimals printed.
    np.testing.assert_array_equal(
        np.round(estimate.proportions, 4),
        [
            [0.0176, 0.0, 0.0013, 0.0011],
            [0.0, 0.0110, 0.0016, 0.0024],
            [0.0019, 0.0, 0.2967, 0.0213],
            [0.0040, 0.0020, 0.0179, 0.6212],
        ],
    )
    np.testing.assert_array_equal(
        np.round(estimate.proportions.sum(0), 4), [0.0235, 0.0130, 0.3175, 0.6460]
    )
    # Section 5.2.2: the deforestation area, 21,158 ha +- 6,158 ha, and the other classes.
    np.testing.assert_array_equal(np.round(estimate.area_ha), [21_158, 11_686, 285_770, 581_386])
    np.testing.assert_array_equal(np.round(estimate.area_ci95_ha), [6_158, 3_756, 15_510, 16_282])
    # Section 5.2.1 (Table 10): accuracies +- 95 % intervals, to the 2 decimals printed.
    np.testing.assert_array_equal(np.round(estimate.users, 2), [0.88, 0.73, 0.93, 0.96])
    np.testing.assert_array_equal(np.round(1.96 * estimate.users_se, 2), [0.07, 0.10, 0.04, 0.02])
    np.testing.assert_array_equal(np.round(estimate.producers, 2), [0.75, 0.85, 0.93, 0.96])
    # eq. 7; the same values as a public step-by-step reproduction of the example
    # (github.com/carmengg/accuracy-assessment-implementation).
    np.testing.assert_array_equal(
        np.round(1.96 * estimate.producers_se, 2), [0.21, 0.25, 0.03, 0.02]
    )
    assert round(estimate.overall, 2) == 0.95 and round(1.96 * estimate.overall_se, 2) == 0.02
    report = estimate.to_dict()
    deforestation = report["classes"]["deforestation"]  # type: ignore[index]
    assert round(deforestation["area"]["estimate_ha"]) == 21_158
    assert round(deforestation["area"]["ci95_ha"]) == 6_158
    assert deforestation["area"]["map_ha"] == pytest.approx(18_000)


def independent(counts: np.ndarray, areas: np.ndarray) -> dict[str, np.ndarray]:
    """The estimators written out from their definitions, one element at a time."""
    k = len(areas)
    total = areas.sum()
    w = areas / total
    n_i = counts.sum(1)
    p = np.array([[w[i] * counts[i, j] / n_i[i] for j in range(k)] for i in range(k)])
    area = np.array([sum(p[i, j] for i in range(k)) * total for j in range(k)])
    se = np.array(
        [
            total
            * np.sqrt(
                sum(
                    w[i] ** 2 * (counts[i, j] / n_i[i]) * (1 - counts[i, j] / n_i[i]) / (n_i[i] - 1)
                    for i in range(k)
                )
            )
            for j in range(k)
        ]
    )
    users = np.array([counts[i, i] / n_i[i] for i in range(k)])
    producers = np.array([p[j, j] / sum(p[i, j] for i in range(k)) for j in range(k)])
    n_hat = np.array([sum(areas[i] * counts[i, j] / n_i[i] for i in range(k)) for j in range(k)])
    var_p = []
    for j in range(k):
        first = areas[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (n_i[j] - 1)
        second = producers[j] ** 2 * sum(
            areas[i] ** 2 * counts[i, j] / n_i[i] * (1 - counts[i, j] / n_i[i]) / (n_i[i] - 1)
            for i in range(k)
            if i != j
        )
        var_p.append((first + second) / n_hat[j] ** 2)
    overall = sum(p[i, i] for i in range(k))
    var_o = sum(w[i] ** 2 * users[i] * (1 - users[i]) / (n_i[i] - 1) for i in range(k))
    return {
        "area": area,
        "se": se,
        "users": users,
        "producers": producers,
        "producers_se": np.sqrt(var_p),
        "overall": np.array(overall),
        "overall_se": np.sqrt(var_o),
    }


@pytest.mark.parametrize("seed", range(5))
def test_estimates_equal_an_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    counts = rng.integers(0, 40, (k, k)) + np.diag(rng.integers(5, 60, k))
    areas = rng.uniform(10, 10_000, k)
    estimate = stratified_estimate(counts, areas, [f"c{i}" for i in range(k)])
    expected = independent(counts.astype(float), areas)
    np.testing.assert_allclose(estimate.area_ha, expected["area"], rtol=1e-12)
    np.testing.assert_allclose(estimate.area_se_ha, expected["se"], rtol=1e-12)
    np.testing.assert_allclose(estimate.users, expected["users"], rtol=1e-12)
    np.testing.assert_allclose(estimate.producers, expected["producers"], rtol=1e-12)
    np.testing.assert_allclose(estimate.producers_se, expected["producers_se"], rtol=1e-10)
    assert estimate.overall == pytest.approx(float(expected["overall"]), rel=1e-12)
    assert estimate.overall_se == pytest.approx(float(expected["overall_se"]), rel=1e-12)
    assert estimate.area_ha.sum() == pytest.approx(areas.sum())


def test_allocations_are_exact() -> None:
    areas = {1: 9000.0, 2: 600.0, 3: 300.0, 4: 100.0}
    pixels = {1: 90_000, 2: 6_000, 3: 3_000, 4: 30}
    assert largest_remainder({1: 1.0, 2: 1.0, 3: 1.0}, 10) == {1: 4, 2: 3, 3: 3}
    # 200 in proportion to area: 180, 12, 6, 2.
    assert allocate(areas, pixels, 200, "proportional") == {1: 180, 2: 12, 3: 6, 4: 2}
    # 203 over 4: 50 each and 3 more (the remainders tie: to the lower keys).
    roomy = {**pixels, 4: 3_000}
    assert allocate(areas, roomy, 203, "equal") == {1: 51, 2: 51, 3: 51, 4: 50}
    # Class 4 has 30 pixels: its other 20 points go to the others by area (18.2, 1.2, 0.6).
    assert allocate(areas, pixels, 203, "equal") == {1: 69, 2: 52, 3: 52, 4: 30}
    # Floors of 50 for the three rare classes (class 4 has only 30 pixels: all of them),
    # the rest (400 - 50 - 50 - 30 = 270) to class 1.
    assert allocate(areas, pixels, 400, "olofsson", 50) == {1: 270, 2: 50, 3: 50, 4: 30}
    # A larger total: class 2's proportional share (0.06 x 2000 = 120) is above its floor.
    sizes = allocate(areas, pixels, 2000, "olofsson", 50)
    assert sizes[4] == 30 and sizes[3] == 60 and sum(sizes.values()) == 2000  # 59.7 rounded up
    assert sizes[1] / sizes[2] == pytest.approx(9000 / 600, rel=0.01)
    with pytest.raises(DualStreamError, match="below 4 classes x --min-per-class 50"):
        allocate(areas, pixels, 100, "olofsson", 50)
    with pytest.raises(DualStreamError, match="--allocation must be one of"):
        allocate(areas, pixels, 100, "neyman")


def class_map(path: Path, crs: str = "EPSG:32612") -> np.ndarray:
    """A 60 x 80 class map (classes 0-2, a rare class 2, nodata 255 in one corner)."""
    rng = np.random.default_rng(0)
    classes = np.where(rng.random((60, 80)) < 0.7, 0, 1).astype(np.uint8)
    classes[20:24, 30:36] = 2
    classes[:10, :10] = 255
    write_raster(path, classes[None], crs, Affine(30, 0, 300_000, 0, -30, 4_100_000), nodata=255)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(class_names='["water", "forest", "bare"]')
    return classes


def test_sample_design_draws_the_allocated_points_at_pixel_centres(tmp_path: Path) -> None:
    classes = class_map(tmp_path / "map.tif")
    sample = draw_sample(tmp_path / "map.tif", 60, "olofsson", min_per_class=15, seed=3)
    assert len(sample) == 60 and sample.crs.to_epsg() == 32612
    sizes = sample.groupby("map_class").size().to_dict()
    valid = classes[classes != 255]
    areas = {k: float((valid == k).sum()) for k in range(3)}
    assert sizes == allocate(areas, {k: int(v) for k, v in areas.items()}, 60, "olofsson", 15)
    rows, cols = sample["row"].to_numpy(), sample["col"].to_numpy()
    assert (classes[rows, cols] == sample["map_class"].to_numpy()).all()  # never nodata
    np.testing.assert_allclose(sample.geometry.x, 300_000 + 30 * cols + 15)
    np.testing.assert_allclose(sample.geometry.y, 4_100_000 - 30 * rows - 15)
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 60  # no repeats
    weights = sample.groupby("map_class")["weight"].first()
    assert weights[2] == pytest.approx(24 / valid.size)
    assert set(sample["map_name"]) == {"water", "forest", "bare"}
    again = draw_sample(tmp_path / "map.tif", 60, "olofsson", min_per_class=15, seed=3)
    assert again.geometry.equals(sample.geometry)


def label(sample_path: Path, truth: np.ndarray, out: Path, names: list[str]) -> None:
    """Fill ``reference`` from a truth grid (as a person would from imagery), by name."""
    sample = gpd.read_file(sample_path)
    sample["reference"] = [names[truth[r, c]] for r, c in zip(sample.row, sample.col, strict=True)]
    sample.to_file(out, driver="GPKG")


def test_sample_workflow_and_its_bad_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = class_map(tmp_path / "map.tif")
    sample_path = tmp_path / "sample.gpkg"
    args = ["sample-design", str(tmp_path / "map.tif"), "--total", "90", "--seed", "1"]
    assert main([*args, "--min-per-class", "20", "--output", str(sample_path)]) == 0
    written = gpd.read_file(sample_path)
    csv = (tmp_path / "sample.csv").read_text().splitlines()
    assert len(written) == 90 and len(csv) == 91 and csv[0].startswith("id,x,y,map_class")
    assert (written["reference"].fillna("") == "").all()
    assert (tmp_path / "sample.png").stat().st_size > 1000  # the points over the map
    # The truth differs from the map: some forest is really water.
    truth = classes.copy()
    truth[classes == 1] = np.where(np.arange(int((classes == 1).sum())) % 5 == 0, 0, 1)
    labelled = tmp_path / "labelled.gpkg"
    label(sample_path, truth, labelled, ["water", "forest", "bare"])
    report = tmp_path / "report"
    evaluate = ["evaluate", "--prediction", str(tmp_path / "map.tif")]
    assert main([*evaluate, "--sample", str(labelled), "--output", str(report)]) == 0
    result = json.loads((report / "report.json").read_text())
    assert result["design"] == "stratified"
    forest = result["classes"]["forest"]
    assert forest["area"]["map_ha"] == pytest.approx((classes == 1).sum() * 0.09)
    assert forest["area"]["estimate_ha"] < forest["area"]["map_ha"]  # some of it is water
    for key in ("users_accuracy", "producers_accuracy"):
        assert set(forest[key]) == {"estimate", "ci95"}
    assert set(result["overall_accuracy"]) == {"estimate", "ci95"}
    # The same from an independent count of the labelled points.
    points = gpd.read_file(labelled)
    counts = np.zeros((3, 3))
    names = ["water", "forest", "bare"]
    for m, ref in zip(points.map_class, points.reference, strict=True):
        counts[m, names.index(ref)] += 1
    valid = classes[classes != 255]
    expected = independent(counts, np.array([(valid == k).sum() * 0.09 for k in range(3)]))
    assert forest["area"]["estimate_ha"] == pytest.approx(expected["area"][1])
    assert "| map \\ reference |" in (report / "report.md").read_text()
    assert (report / "area.png").stat().st_size > 1000

    # Points in another CRS are reprojected (the same report); references as values work.
    moved = points.to_crs("EPSG:4326")
    moved["reference"] = [str(names.index(r)) for r in moved.reference]
    moved.to_file(tmp_path / "lonlat.gpkg", driver="GPKG")
    again = tmp_path / "again"
    assert main([*evaluate, "--sample", str(tmp_path / "lonlat.gpkg"), "--output", str(again)]) == 0
    assert json.loads((again / "report.json").read_text())["classes"] == result["classes"]

    def bad(frame: gpd.GeoDataFrame, named: str) -> None:
        frame.to_file(tmp_path / "bad.gpkg", driver="GPKG")
        capsys.readouterr()
        out = ["--sample", str(tmp_path / "bad.gpkg"), "--output", str(tmp_path / "bad")]
        assert main([*evaluate, *out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0], err
        assert not (tmp_path / "bad").exists()

    outside = points.copy()
    outside.loc[0, "geometry"] = outside.geometry[0].__class__(0, 0)
    bad(outside, "1 point(s) lie outside the map")
    on_nodata = points.copy()
    on_nodata.loc[0, "geometry"] = on_nodata.geometry[0].__class__(300_015, 4_099_985)
    bad(on_nodata, "lie on the map's nodata")
    unknown = points.copy()
    unknown.loc[3, "reference"] = "glacier"
    bad(unknown, "reference 'glacier' (point 4) is not a class of the map")
    empty = points.copy()
    empty["reference"] = ""
    bad(empty, "the reference column is empty")
    few = points[(points.map_class != 2) | (points.index == points.index[points.map_class == 2][0])]
    bad(few.copy(), "stratum 'bare' has 1 labelled point(s)")
    other = points.copy()
    other["stratum"] = (other["map_class"] + 1) % 3
    bad(other, "its strata are not the map's classes")
