"""Importing the original DualStream-DFormer's state dicts into the ``original`` preset.

The original saves ``model.state_dict()`` (462 tensors, names such as
``visual_encoder.encoder.block.0.0.attention.self.query.weight``, ``film_f1.generator.1.
dwconv.weight``, ``ca_f3.attn.in_proj_weight``), its air encoder alone (the ``air_encoder.``
keys without the prefix) and its vision encoder alone (a SegFormer state dict, possibly
with ``_orig_mod.`` and ``segformer.`` prefixes). Importing is renaming only: the model
parts of the ``original`` preset compute the same numbers under these names:

* ``visual_encoder.`` -> ``vision_encoder.model.`` in the installed transformers layout;
* ``film_f1.`` / ``gate_f1.`` -> ``fusion.0.film.`` / ``fusion.0.gate.`` (stage 2 alike),
  ``ca_f3.`` / ``ca_f4.`` -> ``fusion.2.`` / ``fusion.3.``;
* inside ConvNeXt blocks (timm's): ``dwconv`` -> ``conv_dw``, ``pwconv1`` / ``pwconv2`` ->
  ``mlp.fc1`` / ``mlp.fc2``.

Every tensor is consumed or reported: a missing or unexpected key or a wrong shape is one
error naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from torch import Tensor, nn

from ..errors import DualStreamError
from ..torchfiles import load_torch_file
from .vision import installed_layout_is_v5, segformer_key_v5, to_installed_layout

PathLike = str | os.PathLike[str]

#: Original top-level prefixes -> this project's module paths (original preset).
PREFIXES = (
    ("visual_encoder.", "vision_encoder.model."),
    ("air_encoder.", "air_encoder."),
    ("film_f1.", "fusion.0.film."),
    ("gate_f1.", "fusion.0.gate."),
    ("film_f2.", "fusion.1.film."),
    ("gate_f2.", "fusion.1.gate."),
    ("ca_f3.", "fusion.2."),
    ("ca_f4.", "fusion.3."),
    ("decoder.", "decoder."),
)
#: Parts of the original's ConvNeXt block -> timm's names.
BLOCK_PARTS = ((".dwconv.", ".conv_dw."), (".pwconv1.", ".mlp.fc1."), (".pwconv2.", ".mlp.fc2."))
WRAPPERS = ("module.", "_orig_mod.")
VISION = "vision_encoder.model."


def read_state(path: PathLike) -> dict[str, Tensor]:
    """A state dict of tensors from a torch file (never unpickles code)."""
    path = str(path)
    state = load_torch_file(path, "PyTorch state dict file")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise DualStreamError(f"{path}: does not hold a state dict (a mapping of tensors)")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise DualStreamError(f"{path}: entry {bad[0]!r} is not a tensor; not a state dict")
    return dict(state)


def strip_wrappers(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove leading ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) from every key."""
    out = {}
    for key, value in state.items():
        while key.startswith(WRAPPERS):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def _project_key(key: str, source: str) -> str:
    for old, new in PREFIXES:
        if key.startswith(old):
            rest = key[len(old) :]
            if new != VISION:
                for part, timm_part in BLOCK_PARTS:
                    rest = f".{rest}".replace(part, timm_part)[1:]
            return new + rest
    raise DualStreamError(
        f"{source}: unexpected key {key!r}: not a DualStream-DFormer state dict "
        f"(keys start with {', '.join(p for p, _ in PREFIXES)})"
    )


def project_state(state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """Original full-model keys -> this project's keys (``original`` preset)."""
    prefix = "visual_encoder."
    vision = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    renamed = {prefix + k: v for k, v in to_installed_layout(vision).items()}
    others = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return {_project_key(k, source): v for k, v in {**renamed, **others}.items()}


def vision_encoder_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The original's cleaning of a vision-encoder file.

    Keep only ``_orig_mod.`` keys when there are any (prefix stripped), then only
    ``segformer.`` keys when there are any (prefix stripped; drops e.g. ``decode_head.*``).
    """
    cleaned = dict(state)
    for prefix in ("module.", "_orig_mod.", "segformer."):
        if any(k.startswith(prefix) for k in cleaned):
            cleaned = {k[len(prefix) :]: v for k, v in cleaned.items() if k.startswith(prefix)}
    return cleaned


def read_original(
    path: PathLike, air_encoder: PathLike | None = None, vision_encoder: PathLike | None = None
) -> dict[str, Tensor]:
    """The project-named state dict of an original checkpoint.

    With the separate encoder files (when given) replacing those parts.
    """
    source = str(path)
    state = project_state(strip_wrappers(read_state(path)), source)
    if air_encoder is not None:
        air = strip_wrappers(read_state(air_encoder))
        part = project_state({f"air_encoder.{k}": v for k, v in air.items()}, str(air_encoder))
        _replace_part(state, part, "air_encoder.", str(air_encoder))
    if vision_encoder is not None:
        vision = vision_encoder_state(read_state(vision_encoder))
        part = project_state(
            {f"visual_encoder.{k}": v for k, v in vision.items()}, str(vision_encoder)
        )
        _replace_part(state, part, VISION, str(vision_encoder))
    return state


def _replace_part(
    state: dict[str, Tensor], part: dict[str, Tensor], prefix: str, source: str
) -> None:
    """Replace the ``prefix`` tensors of ``state`` by ``part``.

    Replace the ``prefix`` tensors of ``state`` (the full model, which fixes the
    architecture) by ``part``: same keys, same shapes.
    """
    own = {k: v for k, v in state.items() if k.startswith(prefix)}
    _check_keys(set(part), set(own), source)
    _check_shapes(part, own, source)
    state.update(part)


def _check_shapes(state: Mapping[str, Tensor], own: Mapping[str, Tensor], source: str) -> None:
    for key, value in state.items():
        if key == stem_key() and value.shape[1] != own[key].shape[1]:
            raise DualStreamError(
                f"{source}: the vision stem takes {value.shape[1]} bands, the model "
                f"{own[key].shape[1]}; an original checkpoint is imported as trained, without "
                "adapting its stem (start from RGB SegFormer weights with "
                "--model.vision_weights instead, which maps the stem onto the bands by name)"
            )
        if value.shape != own[key].shape:
            raise DualStreamError(
                f"{source}: {key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(own[key].shape)}"
            )


def _check_keys(found: set[str], expected: set[str], source: str) -> None:
    def original_name(key: str) -> str:
        for old, new in PREFIXES:
            if key.startswith(new):
                return old + key[len(new) :]
        return key

    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DualStreamError(
            f"{source}: missing key {original_name(missing[0])!r}{more} "
            f"(project name {missing[0]!r})"
        )
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise DualStreamError(
            f"{source}: unexpected key {original_name(unexpected[0])!r}{more} "
            f"(project name {unexpected[0]!r})"
        )


def stem_key() -> str:
    """The project key of the vision stem convolution in the installed transformers layout."""
    v4 = "encoder.patch_embeddings.0.proj.weight"
    return VISION + (segformer_key_v5(v4) if installed_layout_is_v5() else v4)


def original_dimensions(state: Mapping[str, Tensor], source: str) -> tuple[int, int, int]:
    """(image bands, air channels, head outputs) read off the weights' shapes."""
    keys = (stem_key(), "air_encoder.stem_conv.conv.weight", "decoder.final_classifier_v8.weight")
    for key in keys:
        if key not in state:
            _check_keys(set(state), set(state) | {key}, source)
    stem, air, head = (state[k].shape for k in keys)
    return int(stem[1]), int(air[1]), int(head[0])


def load_original(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load a project-named state dict into ``model`` strictly.

    Every key of one must be in the other, with the same shape; the first that is not is
    named in the error.
    """
    own = model.state_dict()
    _check_keys(set(state), set(own), source)
    _check_shapes(state, own, source)
    model.load_state_dict(dict(state), strict=True)
