"""Agreement between reviewers: Cohen's kappa per pair and Fleiss' kappa for all, per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from engine.errors import InspectorError

# The verdict codes are the categories; one nobody used still counts (sklearn's `labels=`).
CODES = (1, 2, 3, 4)
_K = len(CODES)

UNDEFINED = "undefined (all verdicts the same)"

# Landis & Koch (1977): the top of each band from 0 up; below 0 is "poor", above 0.80
# "almost perfect".
_BANDS = ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"))


@dataclass(frozen=True)
class Kappa:
    """A kappa with the counts behind it.

    n images rated; observed (p_o) and expected (p_e, by chance) agreement, None when n is 0;
    kappa None when n is 0 or p_e is 1 (every verdict in one category: kappa is 0 / 0).
    """

    n: int
    observed: float | None
    expected: float | None
    kappa: float | None


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's kappa of reviewers a and b on the images both reviewed, overall and per class."""

    a: str
    b: str
    overall: Kappa
    per_class: dict[str, Kappa]


@dataclass(frozen=True)
class AgreementReport:
    """Every pair's Cohen's kappa, Fleiss' kappa on the images every reviewer reviewed, and the
    images where at least two reviewers' codes differ.

    per_class keys are the predicted classes ("" unknown) of the images anyone reviewed, in name
    order, the same keys in every pair and in fleiss_per_class (a class can have n = 0).
    """

    reviewers: tuple[str, ...]
    pairs: tuple[PairAgreement, ...]
    fleiss: Kappa
    fleiss_per_class: dict[str, Kappa]
    disagreements: frozenset[str]


_NONE = Kappa(0, None, None, None)


def disagreement(codes: Mapping[str, int]) -> bool:
    """True when at least two reviewers gave one image different codes."""
    return len(set(codes.values())) > 1


def strength(kappa: float) -> str:
    """The Landis & Koch band of a kappa ("substantial"), judged on the value shown (0.62)."""
    # On the rounded value, so the text never says "0.20 (fair)" for a kappa of 0.2004.
    shown = round(kappa, 2)
    if shown < 0:
        return "poor"
    return next((name for top, name in _BANDS if shown <= top), "almost perfect")


def describe(k: Kappa) -> str:
    """Short text for the window and the report: "0.62 (substantial), 48 images"."""
    if k.n == 0:
        return "no images in common"
    images = "1 image" if k.n == 1 else f"{k.n} images"
    return f"{kappa_text(k)}, {images}"


def kappa_text(k: Kappa) -> str:
    """The kappa alone, for a table with the counts beside it: "0.62 (substantial)"."""
    if k.n == 0:
        return "no images in common"
    if k.kappa is None:
        return UNDEFINED
    shown = round(k.kappa, 2) + 0.0  # + 0.0 turns -0.0 into 0.0, so "-0.00" is never shown
    return f"{shown:.2f} ({strength(k.kappa)})"


def agreement(
    verdicts: Mapping[str, Mapping[str, int]], classes: Mapping[str, str]
) -> AgreementReport:
    """Agreement over verdicts (rel_path -> {reviewer: code 1..4}); classes: rel_path -> the
    model's predicted class (missing or empty: "")."""
    rels = list(verdicts)
    reviewers = tuple(sorted({name for codes in verdicts.values() for name in codes}))
    matrix = _code_matrix(verdicts, rels, reviewers)
    names, class_of = _class_index(rels, classes)
    rated = matrix > 0
    # The per-class rows: classes of the images anyone reviewed, in name order.
    shown = sorted(names[i] for i in np.unique(class_of[rated.any(axis=1)]))
    pairs = _pairs(reviewers, matrix, class_of, names, shown)
    fleiss, fleiss_per_class = _fleiss_all(matrix, class_of, names, shown)
    return AgreementReport(
        reviewers=reviewers,
        pairs=pairs,
        fleiss=fleiss,
        fleiss_per_class=fleiss_per_class,
        disagreements=frozenset(np.asarray(rels, dtype=object)[_disagreeing(matrix)]),
    )


def _code_matrix(
    verdicts: Mapping[str, Mapping[str, int]], rels: Sequence[str], reviewers: tuple[str, ...]
) -> np.ndarray:
    """Codes as an (images, reviewers) array; 0 where a reviewer gave no verdict."""
    column = {name: j for j, name in enumerate(reviewers)}
    matrix = np.zeros((len(rels), len(reviewers)), dtype=np.int8)
    for i, rel in enumerate(rels):
        for name, code in verdicts[rel].items():
            if isinstance(code, bool) or code not in CODES:
                raise InspectorError(
                    f"verdict of '{name}' on '{rel}' must be one of 1, 2, 3, 4, got {code!r}"
                )
            matrix[i, column[name]] = code
    return matrix


def _class_index(rels: Sequence[str], classes: Mapping[str, str]) -> tuple[list[str], np.ndarray]:
    """Class names (first-seen order) and each image's index into them."""
    ids: dict[str, int] = {}
    class_of = [ids.setdefault(classes.get(rel) or "", len(ids)) for rel in rels]
    return list(ids), np.asarray(class_of, dtype=np.intp)


def _pairs(
    reviewers: tuple[str, ...],
    matrix: np.ndarray,
    class_of: np.ndarray,
    names: list[str],
    shown: list[str],
) -> tuple[PairAgreement, ...]:
    """Cohen's kappa of every pair of reviewers, overall and for each class in shown."""
    pairs = []
    for a, b in combinations(range(len(reviewers)), 2):
        by_name = dict(zip(names, _pair_tables(matrix, class_of, len(names), a, b), strict=True))
        overall = _cohen(sum(by_name.values(), np.zeros((_K, _K), dtype=np.int64)))
        per_class = {name: _cohen(by_name[name]) for name in shown}
        pairs.append(PairAgreement(reviewers[a], reviewers[b], overall, per_class))
    return tuple(pairs)


def _pair_tables(
    matrix: np.ndarray, class_of: np.ndarray, n_classes: int, a: int, b: int
) -> np.ndarray:
    """(classes, codes, codes) confusion tables of reviewers a and b on the images both rated."""
    both = (matrix[:, a] > 0) & (matrix[:, b] > 0)
    cell = (
        class_of[both] * _K * _K
        + (matrix[both, a].astype(np.intp) - 1) * _K
        + (matrix[both, b].astype(np.intp) - 1)
    )
    return np.bincount(cell, minlength=n_classes * _K * _K).reshape(n_classes, _K, _K)


def _cohen(table: np.ndarray) -> Kappa:
    """Cohen's kappa from a confusion table (rows: reviewer a's codes, columns: b's)."""
    n = int(table.sum())
    if n == 0:
        return _NONE
    agree = int(np.trace(table))
    # Sum over codes of a's count times b's count: p_e * n², kept an exact integer.
    chance = int(table.sum(axis=1).astype(np.int64) @ table.sum(axis=0).astype(np.int64))
    return _kappa(n, agree / n, chance / (n * n), n * agree - chance, n * n - chance)


def _fleiss_all(
    matrix: np.ndarray, class_of: np.ndarray, names: list[str], shown: list[str]
) -> tuple[Kappa, dict[str, Kappa]]:
    """Fleiss' kappa on the images every reviewer reviewed, overall and per class."""
    raters = matrix.shape[1]
    if raters < 2:
        return _NONE, {name: _NONE for name in shown}
    everyone = (matrix > 0).all(axis=1)
    rated, cls = matrix[everyone], class_of[everyone]
    # counts[i, j]: how many reviewers gave image i code j + 1.
    counts = np.stack([(rated == code).sum(axis=1) for code in CODES], axis=1).astype(np.int64)
    n_classes = len(names)
    items = np.bincount(cls, minlength=n_classes)
    squares = np.bincount(cls, weights=(counts * counts).sum(axis=1), minlength=n_classes)
    totals = np.stack(
        [np.bincount(cls, weights=counts[:, j], minlength=n_classes) for j in range(_K)], axis=1
    )
    per_class = {
        name: _fleiss(int(items[i]), raters, int(squares[i]), totals[i].astype(np.int64))
        for i, name in enumerate(names)
    }
    overall = _fleiss(
        int(items.sum()), raters, int(squares.sum()), totals.sum(axis=0).astype(np.int64)
    )
    return overall, {name: per_class[name] for name in shown}


def _fleiss(items: int, raters: int, squares: int, totals: np.ndarray) -> Kappa:
    """Fleiss' kappa from its sums: items rated by raters each, squares = sum of every count
    squared, totals = ratings per code.

    P_bar = (squares - N m) / (N m (m - 1)); P_e = sum(totals²) / (N m)²; both are ratios of
    exact integers, so kappa is one division away from exact.
    """
    if items == 0:
        return _NONE
    ratings = items * raters
    spread = int(totals @ totals)
    pairs_agreeing = (squares - ratings) * ratings
    return _kappa(
        items,
        (squares - ratings) / (ratings * (raters - 1)),
        spread / (ratings * ratings),
        pairs_agreeing - spread * (raters - 1),
        (ratings * ratings - spread) * (raters - 1),
    )


def _kappa(n: int, observed: float, expected: float, above: int, room: int) -> Kappa:
    """kappa = (p_o - p_e) / (1 - p_e), given as integers above/room scaled alike; room 0 means
    p_e is 1 (one category only) and kappa is undefined."""
    return Kappa(n, observed, expected, above / room if room else None)


def _disagreeing(matrix: np.ndarray) -> np.ndarray:
    """Rows where the highest and lowest code given differ (rows without codes never do)."""
    highest = matrix.max(axis=1, initial=0)
    lowest = np.where(matrix > 0, matrix, _K + 1).min(axis=1, initial=_K + 1)
    return highest > lowest
