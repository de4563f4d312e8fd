"""One-line errors for the commands: a wrong setting is reported as ``error: ...`` and exit code 2.

A mistake in a config (a model directory that does not exist, an unknown env id, a data file that
cannot be read) is the user's to fix, and a traceback of hundreds of lines hides the one line
that says what to fix. ``--debug`` or ``AIPO_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer

DEBUG_VARIABLE = "AIPO_DEBUG"
DEBUG_HELP = f"Show the traceback of an error instead of one line (or set {DEBUG_VARIABLE}=1)."


def debug_wanted(flag: bool) -> bool:
    """``--debug`` was given, or ``AIPO_DEBUG`` is set to anything but empty or 0."""
    return flag or os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


def one_line(error: BaseException) -> str:
    """The error's message with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(error).split()) or type(error).__name__


@contextmanager
def one_line_errors(debug: bool, *kinds: type[BaseException], code: int = 2) -> Iterator[None]:
    """Report an error of one of ``kinds`` as one red ``error: ...`` line on stderr and exit ``code``.

    Args:
        debug: re-raise instead (the ``--debug`` flag; ``AIPO_DEBUG=1`` does the same).
        *kinds: the exception classes that mean a wrong setting, not a bug.
        code: the exit code.
    """
    try:
        yield
    except kinds as error:
        if debug_wanted(debug):
            raise
        typer.secho(f"error: {one_line(error)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=code) from error
