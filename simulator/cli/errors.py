"""How the command line fails: bad input is one line and exit code 2."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """Bad command line input: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`), not a usage dump."""

    def error(self, message: str):
        raise UsageError(message)
