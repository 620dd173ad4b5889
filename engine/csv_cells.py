"""The one way the tool turns values into CSV text: cells read as text, rows read whole."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# A cell starting with one of these is run as a formula by spreadsheet programs (OWASP "CSV
# injection"): a file named "=HYPERLINK(...)" or a note "+cmd|..." must stay text when opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel's cell limit; longer text is cut by the spreadsheet without a word, so we cut it visibly.
MAX_CELL_CHARS = 32_767
CUT_MARKER = "...[cut]"
_NEEDS_QUOTES = (",", '"', "\r", "\n")
# A plain number written as text ("-0.25", "1e-05") is no formula and stays a number.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> str:
    """One cell's text: numbers as written, text guarded against formulas, no NUL, bounded.

    None is empty, bools are 1/0, numbers as str() writes them. Text starting with = + - @ tab or CR
    gets a leading apostrophe (shown as text, the apostrophe hidden) unless it is a plain
    number such as "-0.5". NUL bytes are dropped (readers stop at them) and text
    longer than 32,767 characters is cut, ending in '...[cut]'.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\x00", "")
    if _needs_guard(text):
        text = "'" + text
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(CUT_MARKER)] + CUT_MARKER
    return text


def cell_text(cell: str) -> str:
    """The text a guarded cell stands for (csv_cell's apostrophe taken off again), for reading
    back a CSV this tool wrote."""
    return cell[1:] if _looks_guarded(cell) else cell


def _needs_guard(text: str) -> bool:
    # Text that already looks guarded ("'=a.jpg", a real file name) gets one more apostrophe,
    # so it never reads back as, or sits in the same cell as, "=a.jpg".
    return (text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text)) or _looks_guarded(text)


def _looks_guarded(text: str) -> bool:
    return text.startswith("'") and _needs_guard(text[1:])


def _quoted(cell: str) -> str:
    # The stdlib writer leaves a bare CR unquoted when the line ends in LF, and readers split
    # the row there; here any cell holding a CR, LF, quote or comma is quoted.
    if any(c in cell for c in _NEEDS_QUOTES):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def csv_line(values: Iterable[object]) -> str:
    """One complete CSV row (RFC 4180: quoting, CRLF) that a reader always takes as one record."""
    return ",".join(_quoted(csv_cell(value)) for value in values) + "\r\n"


def csv_text(header: Sequence[str], rows: Iterable[Iterable[object]]) -> str:
    """A whole CSV document: the header line, then one line per row (see csv_line)."""
    return "".join([csv_line(header), *(csv_line(row) for row in rows)])
