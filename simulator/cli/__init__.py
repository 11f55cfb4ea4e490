"""The ``raftsim`` command line: one module per command, :func:`main` dispatches."""

from .main import main

__all__ = ["main"]
