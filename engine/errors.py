"""The one exception type for problems a user can cause and fix."""

from __future__ import annotations

import os
from pathlib import Path


class InspectorError(Exception):
    """A user-fixable problem (bad file, wrong checkpoint, missing folder).

    The message is one line a person can act on; callers show it instead of a traceback.
    """


class TrustNeeded(InspectorError):
    """Loading would run code from the file: a full pickle ("pickle") or Python ("code").

    The window offers to load anyway; the command line names the flag that says so.
    """

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


class CamCancelled(Exception):
    """Raised inside a CAM computation when the caller asked to cancel it."""


_FIRST_LINE_MAX = 160


def first_line(exc: BaseException) -> str:
    """An exception's first line, shortened to fit a one-line message."""
    text = str(exc).strip().splitlines()
    line = (text[0] if text else "") or type(exc).__name__
    return line if len(line) <= _FIRST_LINE_MAX else line[: _FIRST_LINE_MAX - 3] + "..."


def stat_file(path: Path, what: str) -> os.stat_result:
    """The stat of a file the user named (``what``: "weights", "profile"), or one line saying
    why it cannot be read: missing, a symlink loop, a name too long, a NUL byte."""
    try:
        return path.stat()
    except FileNotFoundError as exc:
        raise InspectorError(f"{what} file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise InspectorError(f"cannot read {what} path '{path}': {first_line(exc)}") from exc
