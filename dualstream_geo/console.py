"""What the commands print.

Lightning's notices that do not help a user of this tool are dropped (advertisements for
other products, notices about this project's own callbacks, accelerators the machine cannot
have), and jsonargparse's type errors are cut to one short line.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import override

#: The starts and parts of Lightning's info messages that are noise here.
NOISE = (
    "💡 Tip:",  # advertisements for litlogger / litmodels
    "`LightningModule.configure_callbacks` will override",  # the task's own checkpointing
    "GPU available: False",  # on a machine with a GPU the line says whether it is used
    "TPU available:",
    "HPU available:",
    "Seed set to",  # the seed is in the run's config.yaml
    "Detected KeyboardInterrupt",  # the command says "interrupted" or "terminated"
)
#: DDP's warning that a gradient's strides differ from its bucket's where they differ only
#: in a dimension of size 1 (a depthwise convolution's [C, 1, k, k] weight, whose gradient a
#: CPU backward returns channels-last): the same memory layout, so spurious
#: (pytorch/pytorch#47163); other stride mismatches are still shown.
SPURIOUS_GRAD_STRIDES = (
    r"Grad strides do not match bucket view strides\.[\s\S]*"
    r"grad\.sizes\(\) = \[(\d+), 1, (\d+), (\d+)\], strides\(\) = \[(\d+), \d+, (\d+), (\d+)\]\s*"
    r"bucket_view\.sizes\(\) = \[\1, 1, \2, \3\], strides\(\) = \[\4, \d+, \5, \6\]"
)
#: Lightning's loggers that emit them.
LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.utilities.seed",
)


class LightningNoise(logging.Filter):
    """Drops Lightning's records listed in :data:`NOISE`."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in NOISE)


def quiet_lightning() -> None:
    """Attach :class:`LightningNoise` to Lightning's loggers (once).

    And drop the warning Lightning's own code raises under the torch installed (about its
    pytree use), and DDP's :data:`SPURIOUS_GRAD_STRIDES`.
    """
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=SPURIOUS_GRAD_STRIDES, category=UserWarning)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LightningNoise) for f in logger.filters):
            logger.addFilter(LightningNoise())


#: How a parser error's expected types read to a user.
_TYPES = {
    "int": "an integer",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "list": "a list",
    "tuple": "a list",
    "dict": "a mapping (key: value)",
    "NoneType": "null",
}


def brief_parser_error(message: str) -> str:
    """Cut jsonargparse's error for a value of the wrong type to one short line.

    Jsonargparse's error for a value of the wrong type, which lists every member of every
    Union it tried (450-900 characters), as one short line: the full key, what it takes,
    what it got. Other messages are returned as they are.
    """
    keys = re.findall(r'Parser key "([^"]+)"', message)
    if not keys:
        return message
    inner = message.split(f'Parser key "{keys[-1]}"', 1)[1]
    # What follows is the outer Union's own attempt at the nested value, not this key's.
    inner = re.split(
        r" - Expected a <class 'NoneType'> Given value type: <class '\S*NestedArg'>", inner
    )[0]
    expected: list[str] = []
    for match in re.finditer(
        r"Expected a (?:<class '(\w+)'>|typing\.Literal\[([^\]]*)\]|(dot import path string))",
        inner,
    ):
        name, literal, settings = match.groups()
        if literal:
            text = f"one of {literal}"
        elif settings:
            text = f"its settings ({'.'.join(keys)}.NAME VALUE)"
        else:
            text = _TYPES.get(name, name)
        if text not in expected:
            expected.append(text)
    got = re.search(r"(?:Given|Got) value: (.*?)(?: - | \(see |$)", inner)
    if not expected or got is None:
        return message
    return f"{'.'.join(keys)}: expected {' or '.join(expected)}, got {got.group(1)!r}"
