"""User-facing errors shared by the command-line front ends (``fxlic``, ``fxlic golden``, ``fxlic board``).

Library code raises these (or its own ``ValueError`` subclasses); the CLI prints them as one line,
``fxlic: error: …``, exit code 1. They live here, not in ``fxlic.cli``, so that library modules never
import the CLI (and so that ``python -m fxlic.cli`` sees the same class as the modules it calls).
"""

from __future__ import annotations


class UsageError(ValueError):
    """A problem with the command line or its inputs, described in one line for the user."""


class OutputError(OSError):
    """An output file that cannot be written; the message names the user's path, never a temp file."""


CliError = UsageError
"""Former name (kept for callers written against ``fxlic.cli.CliError``)."""

__all__ = ["CliError", "OutputError", "UsageError"]
