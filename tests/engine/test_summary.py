"""The summary tables: verdicts per class, confusion matrix, localisation per ground-truth class."""

from __future__ import annotations

import numpy as np
import pytest

from engine.session import ReviewedImage, Verdict
from engine.summary import confusion_table, localisation_table, verdict_counts, verdict_table


def _record(truth, predicted, hit=None, energy=None, code=None, note=False) -> ReviewedImage:
    verdict = Verdict("x", code, None, "n" if note else None, "ann", "t") if code or note else None
    name = f"{truth}_{predicted}_{hit}_{code}"
    return ReviewedImage(name, truth, predicted, 0.9, hit, energy, verdict)


RECORDS = [
    _record("crazing", "crazing", True, 0.8, code=1),
    _record("crazing", "patches", False, 0.2, code=3),
    _record("patches", "patches", True, 0.6, code=2),
    _record("patches", None),  # not explained yet: in neither score table
    _record(None, "inclusion", True, 0.5, note=True),  # no ground truth; a note is no verdict
    _record(None, "patches", False, 0.1, code=4),  # no ground truth
    _record("scratches", "scratches"),  # no boxes: in the matrix only
]


def test_verdicts_per_predicted_class() -> None:
    rows = verdict_table(RECORDS)
    assert [r.cls for r in rows] == ["", "crazing", "inclusion", "patches", "scratches"]
    assert verdict_counts(rows).tolist() == [
        [0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1],
    ]
    assert [(r.total, r.reviewed) for r in rows] == [(1, 0), (1, 1), (1, 0), (3, 3), (1, 0)]
    assert verdict_counts([]).shape == (0, 5)


def test_confusion_counts_truth_against_prediction() -> None:
    table = confusion_table(RECORDS)
    assert table.classes == ("crazing", "patches", "scratches")
    np.testing.assert_array_equal(table.counts, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])


def test_localisation_per_ground_truth_class_with_a_row_for_images_without_one() -> None:
    table = localisation_table(RECORDS)
    # Not under their predicted classes (inclusion, patches) and not dropped: a row of their own.
    assert table.classes == ("", "crazing", "patches")
    assert table.pointing == pytest.approx((0.5, 0.5, 1.0))
    assert table.energy == pytest.approx((0.3, 0.5, 0.6))


def test_localisation_says_none_where_a_class_has_no_data() -> None:
    records = [_record("crazing", "crazing", True), _record("patches", "patches", energy=0.4)]
    table = localisation_table(records)
    assert table.classes == ("crazing", "patches")
    assert table.pointing == (1.0, None) and table.energy == (None, 0.4)
    assert localisation_table([]).classes == ()
