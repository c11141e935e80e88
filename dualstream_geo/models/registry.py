"""Encoder registry: ``@register_encoder(name)`` and ``build_encoder(name, **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, override

from torch import Tensor, nn

from ..errors import DualStreamError


class Encoder(nn.Module):
    """A multi-scale encoder: ``forward(x)`` returns one feature map per stage.

    ``out_channels[i]`` and ``reductions[i]`` (relative to the *image* grid) describe stage i.
    """

    out_channels: tuple[int, ...]
    reductions: tuple[int, ...]

    @override
    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


E = TypeVar("E", bound=Callable[..., Encoder])
_ENCODERS: dict[str, Callable[..., Encoder]] = {}


def register_encoder(name: str) -> Callable[[E], E]:
    """Register an encoder class or factory under ``name``."""

    def decorator(factory: E) -> E:
        if name in _ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        _ENCODERS[name] = factory
        return factory

    return decorator


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build the encoder registered as ``name``.

    Args:
        name: a name of :func:`list_encoders`.
        **kwargs: the encoder's settings.

    Returns:
        The encoder.

    Raises:
        DualStreamError: an unknown name (the registered ones are listed).
    """
    if name not in _ENCODERS:
        raise DualStreamError(f"unknown encoder {name!r}; registered: {sorted(_ENCODERS)}")
    return _ENCODERS[name](**kwargs)


def list_encoders() -> list[str]:
    """The names :func:`build_encoder` accepts, sorted."""
    return sorted(_ENCODERS)
