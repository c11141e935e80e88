"""InputSpec: everything that defines what the model sees, as one frozen object.

The datamodule builds it from its settings (image bands, classes, the named aux sources,
the aux grid, the normalisation and its statistics); the task builds the model from it;
every checkpoint stores it (:meth:`InputSpec.to_dict`) and ``predict`` / ``validate`` /
``test`` read it back (:meth:`InputSpec.from_dict`). Nothing else repeats these settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ..errors import DualStreamError
from .auxiliary.formats import aux_format
from .auxiliary.spec import (
    AuxSpec,
    aux_from_dict,
)
from .indices import check_indices
from .normalize import AppendAux, DatasetStats, Normalize, OriginalScaling

#: Colours of classes a config gives none for (class 0 black, then distinct hues).
DEFAULT_COLORS = (
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)
NORMALIZATIONS = ("dataset", "original")
#: The default aux grid: 1/8 of the image, the original's (the lite preset also takes 4, 2, 1).
MODEL_AUX_SCALE = 8
#: Width of the model's air-absent input when the spec has no aux source: the original's
#: 48 channels, so that an image-only model is the original architecture (its weights load,
#: and its parameters are initialised in the same order as before named sources existed).
ABSENT_AUX_CHANNELS = 48


@dataclass(frozen=True)
class ImageSpec:
    """The image stream: its bands, files, nodata and spectral indices.

    Attributes:
        bands: the band names in file order (one multi-band file per scene, or one file per
            band).
        band_files: the token that names each band's file (e.g. ``[_b2, _b3, _b4, _b5]``),
            or None for multi-band files.
        nodata: the files' nodata value when they carry none.
        indices: spectral indices computed from the bands and appended after them
            (:mod:`~dualstream_geo.data.indices`).
    """

    bands: tuple[str, ...] = ("blue", "green", "red", "nir")
    band_files: tuple[str, ...] | None = None
    nodata: float | None = None
    indices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.bands:
            raise DualStreamError("image.bands is empty: name the image bands in file order")
        if self.band_files is not None and len(self.band_files) != len(self.bands):
            raise DualStreamError(
                f"image.band_files has {len(self.band_files)} entries, image.bands "
                f"{len(self.bands)}"
            )
        check_indices(self.indices, self.bands)

    @property
    def channels(self) -> tuple[str, ...]:
        """What the model takes: the bands, then the indices."""
        return (*self.bands, *(index.lower() for index in self.indices))


@dataclass(frozen=True)
class ClassSpec:
    """The classes, their colours and how raw label values become classes.

    Attributes:
        names: the class names; their count is the model's number of classes.
        colors: one RGB colour per class (None: a fixed palette).
        map: raw label value -> class index (None: the raw values are the classes).
        unmapped: what raw values missing from ``map`` become: class 0 (``background``) or
            ignored (``ignore``).
        ignore_index: the label of unknown pixels, which the loss and metrics skip.
    """

    names: tuple[str, ...] = ("background", "target")
    colors: tuple[tuple[int, int, int], ...] | None = None
    map: dict[int, int] | None = None
    unmapped: Literal["background", "ignore"] = "background"
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise DualStreamError(f"classes.names must name at least 2 classes, got {self.names}")
        if self.colors is not None and len(self.colors) != len(self.names):
            raise DualStreamError(
                f"classes.colors has {len(self.colors)} colours for {len(self.names)} classes"
            )
        if self.unmapped not in ("background", "ignore"):
            raise DualStreamError(
                f"classes.unmapped must be 'background' or 'ignore', got {self.unmapped!r}"
            )
        top = max(self.map.values(), default=0) if self.map else 0
        if top >= len(self.names) and top != self.ignore_index:
            raise DualStreamError(
                f"classes.map maps to class {top}, but classes.names has {len(self.names)} "
                f"classes (0..{len(self.names) - 1})"
            )

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        """One RGB colour per class: ``colors``, or the default palette."""
        if self.colors:
            return [(int(r), int(g), int(b)) for r, g, b in self.colors]
        return [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(len(self.names))]


@dataclass(frozen=True)
class InputSpec:
    """What defines the model's inputs and outputs (see the module docstring).

    A spec without ``stats`` can build a model but not normalise data.

    Attributes:
        image: the image stream.
        classes: the classes.
        aux: the named aux sources in stream order; empty for the image alone (the model's
            air-absent input).
        aux_scale: aux pixels are ``aux_scale`` image pixels wide.
        aux_fusion: ``dual`` feeds the aux sources to the model's air encoder at
            1/``aux_scale`` of the image; ``early`` reads them on the image grid and appends
            them to the image channels (the baseline that stacks a coarse raster as extra
            bands; the air encoder then gets its "absent" input).
        normalization: ``dataset`` statistics, or the ``original`` project's scaling.
        stats: the band statistics of the image, its indices and the aux channels, found
            from the training data (None until then).
    """

    image: ImageSpec = field(default_factory=ImageSpec)
    classes: ClassSpec = field(default_factory=ClassSpec)
    aux: tuple[AuxSpec, ...] = ()
    aux_scale: int = MODEL_AUX_SCALE
    aux_fusion: Literal["dual", "early"] = "dual"
    normalization: Literal["dataset", "original"] = "dataset"
    stats: DatasetStats | None = None

    def __post_init__(self) -> None:
        if self.aux_scale < 1:
            raise DualStreamError(f"aux_scale must be >= 1, got {self.aux_scale}")
        if self.normalization not in NORMALIZATIONS:
            raise DualStreamError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if self.aux_fusion not in ("dual", "early"):
            raise DualStreamError(f"aux_fusion must be 'dual' or 'early', got {self.aux_fusion!r}")
        if self.aux_fusion == "early" and self.normalization != "dataset":
            raise DualStreamError("aux_fusion 'early' needs normalization 'dataset'")
        if self.image.indices and self.normalization != "dataset":
            raise DualStreamError("indices need normalization 'dataset' (the original has none)")
        seen: set[str] = set()
        for source in self.aux:
            if source.name in seen:
                raise DualStreamError(f"aux source {source.name!r} is named twice")
            seen.add(source.name)

    # -- derived sizes and names ---------------------------------------------------------
    @property
    def in_channels(self) -> int:
        """The model's image input width: bands, indices and early-fused aux channels."""
        return len(self.channel_names)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """The model's image channels.

        The bands, the indices, and with early fusion the aux channels.
        """
        early = tuple(self.aux_channel_names) if self.aux_fusion == "early" else ()
        return (*self.image.channels, *early)

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return len(self.classes.names)

    @property
    def class_names(self) -> list[str]:
        """Class names, in class-index order."""
        return list(self.classes.names)

    @property
    def class_colors(self) -> list[tuple[int, int, int]]:
        """One RGB colour per class, in class-index order."""
        return self.classes.palette

    @property
    def ignore_index(self) -> int:
        """The label value the loss and the metrics ignore."""
        return self.classes.ignore_index

    @property
    def uses_aux(self) -> bool:
        """True when the model's air encoder reads the aux sources (dual fusion)."""
        return bool(self.aux) and self.aux_fusion == "dual"

    @property
    def read_scale(self) -> int:
        """The aux grid the join reads.

        1/``aux_scale`` of the image, or the image grid itself for early fusion.
        """
        return 1 if self.aux_fusion == "early" else self.aux_scale

    @property
    def aux_names(self) -> list[str]:
        """The aux sources' names, in stream order."""
        return [source.name for source in self.aux]

    @property
    def aux_channel_names(self) -> list[str]:
        """The aux stream's channel names (``elevation``, ``no2_2020-01``), in order."""
        return [channel for source in self.aux for channel in (source.channels or ())]

    @property
    def aux_channels(self) -> int:
        """Channels of the aux stream (0 without aux sources)."""
        return sum(source.num_channels for source in self.aux)

    @property
    def model_aux_channels(self) -> int:
        """The model's air-encoder input width (see ``ABSENT_AUX_CHANNELS``)."""
        return self.aux_channels if self.uses_aux else ABSENT_AUX_CHANNELS

    def aux_source(self, name: str) -> AuxSpec:
        """The aux source called ``name``.

        Args:
            name: the source's name.

        Returns:
            Its spec.

        Raises:
            DualStreamError: no source has that name (the names are listed).
        """
        for source in self.aux:
            if source.name == name:
                return source
        listed = ", ".join(self.aux_names) or "none"
        raise DualStreamError(f"no aux source named {name!r} (the spec has: {listed})")

    # -- normalisation -------------------------------------------------------------------
    def transform(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The sample transform the model is trained and predicts with."""
        if self.normalization == "original":
            return OriginalScaling(self.minmax_groups())  # type: ignore[return-value]
        if self.stats is None:
            raise DualStreamError("normalization 'dataset' needs band statistics")
        if self.aux and self.aux_fusion == "early":
            return AppendAux(Normalize(self.stats))  # type: ignore[return-value]
        return Normalize(self.stats)  # type: ignore[return-value]

    def minmax_groups(self) -> list[int]:
        """Channels per file of the aux stream, which the original scaling min-max scales together.

        12 per original file, a whole source otherwise.
        """
        groups: list[int] = []
        for source in self.aux:
            per_file = 12 if aux_format(source.format).original else source.num_channels
            groups += [per_file] * (source.num_channels // per_file)
        return groups

    def aux_fill(self) -> float | list[float]:
        """What missing aux values become before the transform.

        The channel means (0 once standardised), or NaN under the original scaling (which
        zeroes that file).
        """
        if self.normalization == "original":
            return float("nan")
        if self.stats is not None and self.stats.air is not None:
            return list(self.stats.air.mean)
        return 0.0

    def with_stats(self, stats: DatasetStats | None) -> InputSpec:
        """The spec with the band statistics of its training data.

        Raises:
            DualStreamError: the statistics describe other image or aux channels.
        """
        if stats is not None:
            check_stats(self, stats)
        return replace(self, stats=stats)

    # -- comparison ----------------------------------------------------------------------
    def differences(self, other: InputSpec) -> list[str]:
        """What a model trained on ``self`` would read differently from ``other``.

        Statistics and file locations aside; one phrase per difference.
        """
        found = []
        if self.channel_names != other.channel_names:
            found.append(
                f"image channels {list(self.channel_names)} vs {list(other.channel_names)}"
            )
        if self.classes.names != other.classes.names:
            found.append(f"classes {list(self.classes.names)} vs {list(other.classes.names)}")
        if self.aux_names != other.aux_names:
            found.append(f"aux sources {self.aux_names} vs {other.aux_names}")
        else:
            for mine, theirs in zip(self.aux, other.aux, strict=True):
                if mine.settings() != theirs.settings():
                    found.append(f"aux source {mine.name!r} settings")
        if self.aux_scale != other.aux_scale:
            found.append(f"aux_scale {self.aux_scale} vs {other.aux_scale}")
        if self.aux_fusion != other.aux_fusion:
            found.append(f"aux_fusion {self.aux_fusion} vs {other.aux_fusion}")
        if self.normalization != other.normalization:
            found.append(f"normalization {self.normalization} vs {other.normalization}")
        return found

    # -- storage -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (the checkpoint's ``input_spec``); :meth:`from_dict` reads it back."""
        """Plain values only (lists, dicts, numbers, strings): what a checkpoint loaded with
        ``weights_only=True`` may hold."""
        return {
            "image": _plain(asdict(self.image)),
            "classes": _plain(
                asdict(self.classes)
                | {"map": _int_keys(self.classes.map), "colors": self.classes.palette}
            ),
            "aux": [_plain(asdict(source)) for source in self.aux],
            "aux_scale": self.aux_scale,
            "aux_fusion": self.aux_fusion,
            "normalization": self.normalization,
            "stats": self.stats.to_dict() if self.stats is not None else None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> InputSpec:
        """The spec :meth:`to_dict` wrote."""
        image = dict(raw["image"])
        classes = dict(raw["classes"])
        return cls(
            image=ImageSpec(
                bands=tuple(image["bands"]),
                band_files=tuple(image["band_files"]) if image.get("band_files") else None,
                nodata=image.get("nodata"),
                indices=tuple(image.get("indices") or ()),
            ),
            classes=ClassSpec(
                names=tuple(classes["names"]),
                colors=tuple(tuple(c) for c in classes["colors"])
                if classes.get("colors")
                else None,  # type: ignore[misc]
                map=_int_keys(classes.get("map")),
                unmapped=classes.get("unmapped", "background"),
                ignore_index=int(classes.get("ignore_index", 255)),
            ),
            aux=tuple(aux_from_dict(source) for source in raw.get("aux") or ()),
            aux_scale=int(raw.get("aux_scale", MODEL_AUX_SCALE)),
            aux_fusion=raw.get("aux_fusion", "dual"),
            normalization=raw.get("normalization", "dataset"),
            stats=DatasetStats.from_dict(raw["stats"]) if raw.get("stats") else None,
        )


def check_stats(spec: InputSpec, stats: DatasetStats) -> None:
    """Statistics must describe the spec's channels, in its order.

    Raises:
        DualStreamError: other image bands, indices or aux channels.
    """
    if tuple(stats.image.bands) != spec.image.bands:
        raise DualStreamError(
            f"statistics are of image bands {stats.image.bands}, the data has "
            f"{list(spec.image.bands)}"
        )
    indices = [index.lower() for index in spec.image.indices]
    if stats.index_names != indices:
        raise DualStreamError(
            f"statistics are computed for indices {stats.index_names}, the data asks for {indices}"
        )
    aux = stats.air.bands if stats.air is not None else []
    if spec.normalization == "dataset" and list(aux) != spec.aux_channel_names:
        raise DualStreamError(
            f"statistics are of aux channels {_short(aux)}, the data has "
            f"{_short(spec.aux_channel_names)}"
        )
    if stats.air is not None:
        for name, low, high, std in zip(
            stats.air.bands, stats.air.min, stats.air.max, stats.air.std, strict=True
        ):
            if high - low <= 0 or std <= 1e-6 * max(1.0, abs(low), abs(high)):
                raise DualStreamError(
                    f"aux channel {name!r} is constant ({low:g}) over the training data: it "
                    "carries no information and cannot be standardised; leave it out"
                )


def _short(names: Sequence[str], shown: int = 6) -> str:
    names = list(names)
    if len(names) <= shown:
        return str(names)
    return f"[{', '.join(names[:shown])}, ... {len(names)} in all]"


def _int_keys(mapping: Mapping[Any, Any] | None) -> dict[int, int] | None:
    if mapping is None:
        return None
    return {int(k): int(v) for k, v in mapping.items()}


def _plain(value: Any) -> Any:
    """Tuples as lists: the JSON-like values of checkpoints."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
