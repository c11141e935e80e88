"""Loading pretrained weights: Hugging Face directories or hub ids, and state-dict files.

Weights cannot be downloaded on every machine, so every path is local-first: a directory
saved with ``save_pretrained``, a ``.pth``/``.pt``/``.safetensors`` file, or (for users who
are online) a hub id such as ``nvidia/mit-b1``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import DualStreamError
from ..torchfiles import load_torch_file
from .vision import to_installed_layout

log = logging.getLogger(__name__)

KNOWN_PREFIXES = ("_orig_mod.", "module.", "model.", "segformer.")
#: Band order of pretrained RGB stems.
PRETRAINED_BANDS = ("red", "green", "blue")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A state dict from a .safetensors, .pth or .pt file (Lightning checkpoints too)."""
    path = str(path)
    if not os.path.isfile(path):
        raise DualStreamError(f"{path}: weights file not found")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state: object = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the same user error
        raise DualStreamError(f"{path}: not a readable weights file ({error})") from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DualStreamError(f"{path}: does not hold a state dict of tensors")
    return dict(state)


def strip_prefixes(
    state: Mapping[str, Tensor], prefixes: Sequence[str] = KNOWN_PREFIXES
) -> dict[str, Tensor]:
    """Remove known wrapper prefixes (``_orig_mod.``, ``module.``, ...) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def looks_like_hub_id(source: str) -> bool:
    """True for a hub id (``owner/name``), False for a path of this machine's form.

    True for ``owner/name`` without a file suffix or a path of this machine's form (a
    missing local path is then reported at once, not tried on the hub with retries).
    """
    if source.startswith((".", "/", "~")) or os.sep != "/" and os.sep in source:
        return False
    parts = source.split("/")
    suffixes = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
    local = os.path.isdir(parts[0])  # "weights/mit-b1" beside a weights/ folder: a path
    return len(parts) == 2 and all(parts) and not local and not source.endswith(suffixes)


def hf_segformer_state_dict(source: str) -> dict[str, Tensor]:
    """State dict of a SegFormer/MiT model from a ``save_pretrained`` directory or hub id."""
    from transformers import SegformerModel

    try:
        model = SegformerModel.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise DualStreamError(f"{source}: cannot load a SegFormer model ({error})") from None
    return model.state_dict()


def adapt_stem(
    weight: Tensor, band_names: Sequence[str], pretrained_bands: Sequence[str] = PRETRAINED_BANDS
) -> Tensor:
    """Map a pretrained stem (out, len(pretrained_bands), k, k) onto ``band_names``.

    Each band named in ``pretrained_bands`` takes that filter (red on red, whatever its
    position); other bands start from the mean filter. All filters are then scaled by
    ``len(pretrained_bands) / len(band_names)``, so an input whose bands are equal gives
    the same stem output as the pretrained model on equal RGB bands.

    Args:
        weight: the pretrained stem's filters.
        band_names: the model's input bands, in order.
        pretrained_bands: the bands the pretrained filters were trained on, in order.

    Returns:
        (out, len(band_names), k, k) filters.
    """
    if weight.shape[1] != len(pretrained_bands):
        raise DualStreamError(
            f"pretrained stem has {weight.shape[1]} input channels, expected "
            f"{len(pretrained_bands)} ({', '.join(pretrained_bands)})"
        )
    mean = weight.mean(dim=1)
    lookup = {name: i for i, name in enumerate(pretrained_bands)}
    filters = [
        weight[:, lookup[b]] if b in lookup else mean for b in (n.lower() for n in band_names)
    ]
    return torch.stack(filters, dim=1) * (len(pretrained_bands) / len(band_names))


def load_into(
    module: nn.Module,
    state: Mapping[str, Tensor],
    source: str,
    stem_key: str | None = None,
    band_names: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``module`` after stem adaptation.

    Returns (missing, unexpected) keys, which are also logged. Raises when no key matches
    or a matching key has the wrong shape.
    """
    own = module.state_dict()
    if stem_key and stem_key in state and band_names is not None:
        pretrained = state[stem_key].shape[1]
        if pretrained != own[stem_key].shape[1] or pretrained == len(PRETRAINED_BANDS):
            state = {**state, stem_key: adapt_stem(state[stem_key], band_names)}
            log.warning(
                "%s: %d-band stem adapted to bands %s: %s take the pretrained filters by "
                "name, other bands the mean filter, all scaled by %d/%d",
                source,
                pretrained,
                ", ".join(band_names),
                "/".join(b for b in band_names if b.lower() in PRETRAINED_BANDS) or "no band",
                pretrained,
                len(band_names),
            )
    matched = [k for k in state if k in own]
    if not matched:
        sample = ", ".join(list(state)[:3])
        raise DualStreamError(
            f"{source}: no weights match {type(module).__name__} (checkpoint keys like {sample})"
        )
    wrong = [k for k in matched if state[k].shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise DualStreamError(
            f"{source}: {k} has shape {tuple(state[k].shape)}, "
            f"the model expects {tuple(own[k].shape)}"
        )
    result = module.load_state_dict({k: state[k] for k in matched}, strict=False)
    unexpected = [k for k in state if k not in own]
    if result.missing_keys or unexpected:
        log.warning(
            "%s: loaded %d tensors; %d missing (%s), %d unexpected (%s)",
            source,
            len(matched),
            len(result.missing_keys),
            ", ".join(result.missing_keys[:5]),
            len(unexpected),
            ", ".join(unexpected[:5]),
        )
    return list(result.missing_keys), unexpected


def load_weights(
    module: nn.Module,
    source: str | os.PathLike[str],
    stem_key: str | None = None,
    band_names: Sequence[str] | None = None,
    hf_model: bool = False,
) -> tuple[list[str], list[str]]:
    """Load a weights file, or (``hf_model``) a Hugging Face directory or hub id.

    Args:
        module: the module to load into.
        source: the weights file, or a Hugging Face directory or hub id.
        stem_key: the key of the input stem's filters, adapted to ``band_names``.
        band_names: the module's input bands.
        hf_model: ``source`` may be a Hugging Face SegFormer model.

    Returns:
        The (missing, unexpected) keys.

    Raises:
        DualStreamError: a missing source, or no key that matches the module.
    """
    source = str(source)
    if os.path.isfile(source):
        state = strip_prefixes(read_state_dict(source))
    elif hf_model and (os.path.isdir(source) or looks_like_hub_id(source)):
        state = hf_segformer_state_dict(source)
    else:
        raise DualStreamError(f"{source}: weights file not found")
    if hf_model:
        state = to_installed_layout(state)
    return load_into(module, state, source, stem_key, band_names)


def load_model_weights(model: nn.Module, source: str | os.PathLike[str]) -> None:
    """Initialise a whole model from ``source``.

    A project checkpoint (``.ckpt``, e.g. from ``dualstream-geo import-original``) or the
    original project's full-model state dict.

    Raises:
        DualStreamError: the file is missing or unreadable, or its tensors do not match the
            model (the first missing/unexpected key or wrong shape is named).
    """
    from .original_checkpoint import load_original, project_state, read_state, strip_wrappers

    path = str(source)
    raw = load_torch_file(path, "checkpoint")
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        state = {
            k[len("model.") :]: v for k, v in raw["state_dict"].items() if k.startswith("model.")
        }
    else:
        state = project_state(strip_wrappers(read_state(path)), path)
    load_original(model, state, path)
