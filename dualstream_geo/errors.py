"""Errors raised for bad user input, caught by the CLI and printed as one line."""


class DualStreamError(ValueError):
    """Bad input: a file, parameter or combination that cannot work. The message names it."""
