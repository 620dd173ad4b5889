"""Tests for engine/csv_cells.py: formula guard, quoting of CR/LF, NUL, the cell length limit."""

from __future__ import annotations

import csv
import io

from engine.csv_cells import CUT_MARKER, MAX_CELL_CHARS, cell_text, csv_cell, csv_line, csv_text


def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_formula_starts_are_kept_as_text() -> None:
    for text in ('=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text


def test_plain_numbers_and_ordinary_text_are_unchanged() -> None:
    assert [csv_cell(v) for v in ("-0.25", "+1e-05", "a-b", "x=1", 3, -1.5, True, None)] == [
        "-0.25",
        "+1e-05",
        "a-b",
        "x=1",
        "3",
        "-1.5",
        "1",
        "",
    ]


def test_a_bare_carriage_return_is_quoted_so_the_row_stays_one_record() -> None:
    # The stdlib writer with "\n" line ends left "a\r+cmd|x" unquoted; readers split there.
    line = csv_line(["a\r+cmd|x", "ok"])
    assert line == '"a\r+cmd|x",ok\r\n'
    assert _parse(line) == [["a\r+cmd|x", "ok"]]


def test_nul_is_removed_and_long_cells_are_cut_with_a_marker() -> None:
    note = "x" * 1_000_000
    cell = csv_cell(note)
    assert len(cell) == MAX_CELL_CHARS and cell.endswith(CUT_MARKER)
    assert csv_cell("a\x00b") == "ab"


def test_csv_text_round_trips_through_a_reader() -> None:
    rows = [["=1", 'say "hi", ok\n'], ["plain", None]]
    assert _parse(csv_text(["a", "b"], rows)) == [
        ["a", "b"],
        ["'=1", 'say "hi", ok\n'],
        ["plain", ""],
    ]


def test_cell_text_takes_the_guard_off_again() -> None:
    for text in ("=1", "+cmd", "'quoted already", "plain", "-0.25", "'=a.jpg", "''+x", "'-0.5"):
        assert cell_text(csv_cell(text)) == text
    # A name that looks guarded and the name it would stand for are two different cells.
    assert csv_cell("'=a.jpg") == "''=a.jpg" != csv_cell("=a.jpg") == "'=a.jpg"
    assert csv_cell("'-0.5") == "'-0.5"
