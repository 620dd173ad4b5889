"""A guard against PySide6 dropping references to None, True and False (Python 3.11).

PySide6 6.12.0 returns ``SignalInstance.emit()``'s True without a new reference, and an empty
QVariant comes back to Python as a None it does not own: every emit from Python takes one
reference off True. Python 3.11 counts references to True and None like any object's, so after
some thousands of emits (a gallery filling, a day of review) the count reaches zero and the
process aborts with "Fatal Python error: bool_dealloc: deallocating True or False". Python 3.12
made these objects immortal; this does the same on 3.11, once, when a probe shows the leak.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

# Python 3.12's immortal count is 2**32 - 1; a count this large outlives any session's emits.
IMMORTAL = 1 << 40


class _Probe(QObject):
    sig = Signal()


def emit_drops_a_reference() -> bool:
    """True when emitting a signal takes a reference off True (the PySide6 6.12.0 bug)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        probe.sig.emit()
    return sys.getrefcount(True) < before


def guard_singletons() -> bool:
    """Make None, True and False immortal where references to them leak; True when done."""
    if sys.version_info >= (3, 12) or not emit_drops_a_reference():
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += IMMORTAL
    return True
