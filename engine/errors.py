"""The one exception type for problems a user can cause and fix."""


class InspectorError(Exception):
    """A user-fixable problem (bad file, wrong checkpoint, missing folder).

    The message is one line a person can act on; callers show it instead of a traceback.
    """


class CamCancelled(Exception):
    """Raised inside a CAM computation when the caller asked to cancel it."""
