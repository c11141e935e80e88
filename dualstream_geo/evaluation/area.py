"""Area and accuracy from a labelled stratified random sample, with 95 % intervals.

The estimator of Olofsson et al. (2014, "Good practices for estimating area and assessing
accuracy of land change", Remote Sensing of Environment 148: 42-57; equations numbered as
there) for stratified random sampling with the map classes as strata (a simple random or
systematic sample is post-stratified by the map classes the same way). Pixel counts of a
map are biased by its errors; these estimates are not.

With ``W_i`` the map area share of stratum ``i``, ``n_ij`` the sample points of stratum
``i`` labelled ``j`` and ``n_i.`` the points of stratum ``i``:

* area proportions ``p_ij = W_i n_ij / n_i.`` (eq. 4); class area proportion ``p_.j``
  (eq. 9) with standard error ``sqrt(sum_i W_i^2 (n_ij / n_i.)(1 - n_ij / n_i.) /
  (n_i. - 1))`` (eq. 10); areas and their errors are these times the map's area (eq. 11);
* user's accuracy ``U_i = p_ii / p_i.`` with variance ``U_i (1 - U_i) / (n_i. - 1)``
  (eqs. 2, 6); producer's accuracy ``P_j = p_jj / p_.j`` with the variance of eq. 7;
  overall accuracy ``O = sum_i p_ii`` with variance ``sum_i W_i^2 U_i (1 - U_i) /
  (n_i. - 1)`` (eqs. 1, 5). Intervals are estimate +- 1.96 standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DualStreamError

#: Normal quantile of a two-sided 95 % interval.
Z95 = 1.96


@dataclass(frozen=True)
class AreaEstimate:
    """Estimates of a stratified sample (strata = map classes), per class in ``names``.

    Attributes:
        names: the classes, in order (map classes and reference classes alike).
        counts: (K, K) sample counts, rows = map class (stratum), columns = reference.
        map_area_ha: (K,) the map's area of each class (the strata's areas).
        proportions: (K, K) estimated area proportions ``p_ij``.
        area_ha, area_se_ha: (K,) estimated area of each reference class and its standard
            error.
        users, users_se, producers, producers_se: (K,) accuracies and standard errors
            (NaN where undefined: a class neither mapped nor found).
        overall, overall_se: overall accuracy and its standard error.
    """

    names: tuple[str, ...]
    counts: np.ndarray
    map_area_ha: np.ndarray
    proportions: np.ndarray
    area_ha: np.ndarray
    area_se_ha: np.ndarray
    users: np.ndarray
    users_se: np.ndarray
    producers: np.ndarray
    producers_se: np.ndarray
    overall: float
    overall_se: float

    @property
    def area_ci95_ha(self) -> np.ndarray:
        """The half-width of each class's 95 % confidence interval of area, in hectares."""
        return Z95 * self.area_se_ha

    def to_dict(self) -> dict[str, object]:
        """The report's entries (``report.json``).

        Per class and overall; null where a value is undefined.
        """

        def value(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        classes = {}
        for i, name in enumerate(self.names):
            classes[name] = {
                "area": {
                    "map_ha": float(self.map_area_ha[i]),
                    "estimate_ha": float(self.area_ha[i]),
                    "se_ha": float(self.area_se_ha[i]),
                    "ci95_ha": float(self.area_ci95_ha[i]),
                },
                "users_accuracy": {
                    "estimate": value(self.users[i]),
                    "ci95": value(Z95 * self.users_se[i]),
                },
                "producers_accuracy": {
                    "estimate": value(self.producers[i]),
                    "ci95": value(Z95 * self.producers_se[i]),
                },
                "sample_points": int(self.counts[i].sum()),
            }
        return {
            "classes": classes,
            "overall_accuracy": {
                "estimate": self.overall,
                "ci95": Z95 * self.overall_se,
            },
            "error_matrix_counts": self.counts.astype(int).tolist(),
            "error_matrix_area_proportions": self.proportions.tolist(),
            "total_area_ha": float(self.map_area_ha.sum()),
        }


def stratified_estimate(
    counts: np.ndarray, map_area_ha: Sequence[float], names: Sequence[str]
) -> AreaEstimate:
    """Olofsson et al. (2014) estimates from sample ``counts`` and the strata's areas.

    Args:
        counts: (K, K) points per map class (rows, the strata) and reference class.
        map_area_ha: (K,) the map's area of each class, in hectares.
        names: the K class names.

    Returns:
        The estimates (see :class:`AreaEstimate`).

    Raises:
        DualStreamError: a mapped class (a stratum with area) with fewer than 2 labelled
            points: its variance cannot be estimated.
    """
    n = np.asarray(counts, dtype=np.float64)
    area = np.asarray(map_area_ha, dtype=np.float64)
    k = len(names)
    if n.shape != (k, k) or area.shape != (k,):
        raise DualStreamError(f"counts must be {k} x {k} and areas {k}, got {n.shape}")
    rows = n.sum(1)
    mapped = area > 0
    few = [names[i] for i in range(k) if mapped[i] and rows[i] < 2]
    if few:
        raise DualStreamError(
            f"stratum {few[0]!r} has {int(rows[names.index(few[0])])} labelled point(s): at "
            "least 2 are needed to estimate its variance; label more points of it"
        )
    total = area.sum()
    weights = area / total
    share = np.divide(n, rows[:, None], out=np.zeros_like(n), where=rows[:, None] > 0)
    proportions = weights[:, None] * share
    column = proportions.sum(0)
    # eq. 10: the variance of each stratum's share, summed with the squared weights.
    variance_terms = np.zeros_like(n)
    usable = rows > 1
    variance_terms[usable] = (
        weights[usable, None] ** 2 * share[usable] * (1 - share[usable]) / (rows[usable, None] - 1)
    )
    area_se = np.sqrt(variance_terms.sum(0)) * total

    diagonal = np.diag(proportions)
    users = np.divide(diagonal, weights, out=np.full(k, np.nan), where=weights > 0)
    users_var = np.full(k, np.nan)
    users_var[usable] = users[usable] * (1 - users[usable]) / (rows[usable] - 1)
    producers = np.divide(diagonal, column, out=np.full(k, np.nan), where=column > 0)

    # eq. 7, in map pixels' stead the strata's areas (the ratio is the same).
    estimated = (area[:, None] * share).sum(0)  # N_.j: the estimated area of class j
    producers_var = np.full(k, np.nan)
    for j in range(k):
        if estimated[j] <= 0:
            continue
        # A class that is not mapped (no stratum) has no own term.
        own = area[j] ** 2 * (1 - producers[j]) ** 2 * users_var[j] if usable[j] else 0.0
        others = sum(
            area[i] ** 2 * share[i, j] * (1 - share[i, j]) / (rows[i] - 1)
            for i in range(k)
            if i != j and usable[i]
        )
        producers_var[j] = (own + producers[j] ** 2 * others) / estimated[j] ** 2
    overall = float(diagonal.sum())
    overall_var = float(np.nansum(weights[usable] ** 2 * users_var[usable]))
    return AreaEstimate(
        names=tuple(names),
        counts=n,
        map_area_ha=area,
        proportions=proportions,
        area_ha=column * total,
        area_se_ha=area_se,
        users=users,
        users_se=np.sqrt(users_var),
        producers=producers,
        producers_se=np.sqrt(producers_var),
        overall=overall,
        overall_se=math.sqrt(overall_var),
    )
