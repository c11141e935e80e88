"""Errors raised for bad user input, caught by the CLI and printed as one line."""

from __future__ import annotations

import argparse
from typing import NoReturn, override


class DualStreamError(ValueError):
    """Bad input: a file, parameter or combination that cannot work. The message names it."""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, not a usage dump.

    An argparse parser whose errors are one line (a :class:`DualStreamError`, printed by the
    command's entry point), not a usage dump.
    """

    @override
    def error(self, message: str) -> NoReturn:
        raise DualStreamError(f"{self.prog}: {message} (see {self.prog} --help)")
