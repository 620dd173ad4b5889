"""The one exception type for problems a user can cause and fix."""


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
