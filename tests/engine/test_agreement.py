"""Tests for engine/agreement.py: kappas equal to scikit-learn's and statsmodels', hand-worked
cases, undefined kappas, the disagreements and the short text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from engine.agreement import (
    UNDEFINED,
    Kappa,
    agreement,
    describe,
    disagreement,
    strength,
)
from engine.errors import InspectorError
from tests.conftest import modules_loaded_by

CLASSES = ("crazing", "inclusion", "scratches", "")


def generated(seed: int, reviewers: int, images: int = 400) -> tuple[dict, dict]:
    """Verdicts that agree more than chance: each reviewer copies an image's 'true' code with
    probability 0.6, else picks any; each skips an image with probability 0.2."""
    rng = np.random.default_rng(seed)
    names = [f"rev{j}" for j in range(reviewers)]
    truth = rng.choice([1, 2, 3, 4], size=images, p=[0.5, 0.3, 0.15, 0.05])
    verdicts: dict[str, dict[str, int]] = {}
    classes: dict[str, str] = {}
    for i in range(images):
        rel = f"img{i:04d}.png"
        codes = {}
        for name in names:
            if rng.random() < 0.2:
                continue
            codes[name] = int(truth[i] if rng.random() < 0.6 else rng.integers(1, 5))
        verdicts[rel] = codes
        # Some images have no predicted class in the mapping at all, some an empty one.
        if i % 7:
            classes[rel] = CLASSES[int(rng.integers(0, len(CLASSES)))]
    return verdicts, classes


def class_of(classes: dict, rel: str) -> str:
    return classes.get(rel) or ""


@pytest.mark.parametrize(("seed", "reviewers"), [(0, 2), (1, 3), (2, 4), (3, 5), (4, 5), (5, 3)])
def test_cohen_equals_sklearn_per_pair_and_class(seed: int, reviewers: int) -> None:
    verdicts, classes = generated(seed, reviewers)
    report = agreement(verdicts, classes)
    assert report.reviewers == tuple(f"rev{j}" for j in range(reviewers))
    assert len(report.pairs) == reviewers * (reviewers - 1) // 2
    for pair in report.pairs:
        both = [rel for rel, codes in verdicts.items() if pair.a in codes and pair.b in codes]
        groups = {"all": both} | {
            cls: [rel for rel in both if class_of(classes, rel) == cls] for cls in pair.per_class
        }
        for group, rels in groups.items():
            got = pair.overall if group == "all" else pair.per_class[group]
            a = [verdicts[rel][pair.a] for rel in rels]
            b = [verdicts[rel][pair.b] for rel in rels]
            expected = cohen_kappa_score(a, b, labels=[1, 2, 3, 4])
            assert got.n == len(rels)
            assert got.kappa == pytest.approx(expected, abs=1e-12)
            assert got.observed == pytest.approx(np.mean(np.equal(a, b)), abs=1e-12)
            chance = sum(a.count(c) * b.count(c) for c in (1, 2, 3, 4)) / len(rels) ** 2
            assert got.expected == pytest.approx(chance, abs=1e-12)


@pytest.mark.parametrize(("seed", "reviewers"), [(10, 2), (11, 3), (12, 4), (13, 5), (14, 5)])
def test_fleiss_equals_statsmodels_overall_and_per_class(seed: int, reviewers: int) -> None:
    verdicts, classes = generated(seed, reviewers)
    report = agreement(verdicts, classes)
    everyone = [rel for rel, codes in verdicts.items() if len(codes) == reviewers]
    groups = {"all": everyone} | {
        cls: [rel for rel in everyone if class_of(classes, rel) == cls]
        for cls in report.fleiss_per_class
    }
    for group, rels in groups.items():
        got = report.fleiss if group == "all" else report.fleiss_per_class[group]
        data = np.array([[verdicts[rel][name] for name in report.reviewers] for rel in rels])
        # Codes 1..4 as categories 0..3, all four kept even when one is unused.
        table = aggregate_raters(data - 1, n_cat=4)[0]
        assert got.n == len(rels)
        assert got.kappa == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-12)
        assert got.kappa == pytest.approx(
            (got.observed - got.expected) / (1 - got.expected), abs=1e-12
        )


def test_per_class_keys_are_the_reviewed_classes_in_every_table() -> None:
    verdicts, classes = generated(20, 4)
    verdicts["unreviewed.png"] = {}
    classes["unreviewed.png"] = "patches"
    report = agreement(verdicts, classes)
    reviewed = sorted({class_of(classes, rel) for rel, codes in verdicts.items() if codes})
    assert reviewed == sorted(CLASSES)
    assert list(report.fleiss_per_class) == reviewed
    assert all(list(pair.per_class) == reviewed for pair in report.pairs)


def test_textbook_cohen() -> None:
    """Wikipedia's Cohen's kappa example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no."""
    cells = [(1, 1)] * 20 + [(1, 2)] * 5 + [(2, 1)] * 10 + [(2, 2)] * 15
    verdicts = {f"{i}.png": {"a": x, "b": y} for i, (x, y) in enumerate(cells)}
    pair = agreement(verdicts, {}).pairs[0]
    assert (pair.a, pair.b) == ("a", "b")
    assert pair.overall == Kappa(50, 0.7, 0.5, pytest.approx(0.4, abs=1e-15))
    assert pair.per_class.keys() == {""}
    assert pair.per_class[""] == pair.overall


def test_hand_worked_fleiss() -> None:
    """3 raters, 4 images: P_bar = 2/3, P_e = 46/144, kappa = 25/49."""
    rows = [(1, 1, 1), (1, 1, 2), (2, 2, 2), (3, 3, 4)]
    verdicts = {f"{i}.png": dict(zip("xyz", row, strict=True)) for i, row in enumerate(rows)}
    fleiss = agreement(verdicts, {}).fleiss
    assert fleiss.n == 4
    assert fleiss.observed == pytest.approx(2 / 3, abs=1e-15)
    assert fleiss.expected == pytest.approx(46 / 144, abs=1e-15)
    assert fleiss.kappa == pytest.approx(25 / 49, abs=1e-15)


def test_perfect_agreement_is_one() -> None:
    verdicts = {f"{i}.png": {"a": i % 4 + 1, "b": i % 4 + 1, "c": i % 4 + 1} for i in range(9)}
    report = agreement(verdicts, {})
    assert [pair.overall.kappa for pair in report.pairs] == [1.0, 1.0, 1.0]
    assert report.fleiss.kappa == 1.0
    assert report.disagreements == frozenset()


def test_one_category_only_is_undefined_not_nan() -> None:
    verdicts = {f"{i}.png": {"a": 2, "b": 2, "c": 2} for i in range(3)}
    report = agreement(verdicts, {"0.png": "crazing"})
    undefined = Kappa(3, 1.0, 1.0, None)
    assert [pair.overall for pair in report.pairs] == [undefined] * 3
    assert report.fleiss == undefined
    assert report.fleiss_per_class == {
        "": Kappa(2, 1.0, 1.0, None),
        "crazing": Kappa(1, 1.0, 1.0, None),
    }
    assert describe(report.fleiss) == f"{UNDEFINED}, 3 images"


def test_no_shared_images_gives_n_zero() -> None:
    verdicts = {"a.png": {"ann": 1}, "b.png": {"bob": 2}}
    report = agreement(verdicts, {"a.png": "crazing", "b.png": "crazing"})
    none = Kappa(0, None, None, None)
    assert report.pairs[0].overall == none
    assert report.pairs[0].per_class == {"crazing": none}
    assert report.fleiss == none
    assert report.fleiss_per_class == {"crazing": none}
    assert describe(none) == "no images in common"


@pytest.mark.parametrize(
    "verdicts", [{}, {"a.png": {}}, {"a.png": {"ann": 1}, "b.png": {"ann": 3}}]
)
def test_fewer_than_two_reviewers(verdicts: dict) -> None:
    report = agreement(verdicts, {})
    assert report.pairs == ()
    assert report.fleiss == Kappa(0, None, None, None)
    assert report.disagreements == frozenset()


def test_fleiss_counts_only_images_everyone_reviewed() -> None:
    verdicts = {
        "all.png": {"a": 1, "b": 1, "c": 2},
        "all2.png": {"a": 3, "b": 3, "c": 3},
        "two.png": {"a": 1, "b": 4},
        "one.png": {"c": 4},
    }
    report = agreement(verdicts, {})
    assert report.fleiss.n == 2
    assert {(p.a, p.b): p.overall.n for p in report.pairs} == {
        ("a", "b"): 3,
        ("a", "c"): 2,
        ("b", "c"): 2,
    }
    assert report.disagreements == frozenset({"all.png", "two.png"})


def test_disagreements_exact_on_generated_verdicts() -> None:
    verdicts, classes = generated(30, 5)
    expected = {rel for rel, codes in verdicts.items() if len(set(codes.values())) > 1}
    assert 0 < len(expected) < len(verdicts)
    assert agreement(verdicts, classes).disagreements == frozenset(expected)


def test_disagreement() -> None:
    assert disagreement({"a": 1, "b": 2})
    assert disagreement({"a": 1, "b": 1, "c": 4})
    assert not disagreement({"a": 3, "b": 3})
    assert not disagreement({"a": 3})
    assert not disagreement({})


@pytest.mark.parametrize("code", [0, 5, None, "2", True, 2.5])
def test_a_code_outside_1_to_4_is_refused(code: object) -> None:
    with pytest.raises(InspectorError, match=r"verdict of 'bob' on 'x.png' must be one of 1, 2"):
        agreement({"x.png": {"ann": 1, "bob": code}}, {})


@pytest.mark.parametrize(
    ("kappa", "band"),
    [
        (-0.3, "poor"),
        (-0.004, "slight"),  # shown as 0.00
        (0.0, "slight"),
        (0.2, "slight"),
        (0.21, "fair"),
        (0.4, "fair"),
        (0.41, "moderate"),
        (0.6, "moderate"),
        (0.62, "substantial"),
        (0.8, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
    ],
)
def test_landis_koch_bands(kappa: float, band: str) -> None:
    assert strength(kappa) == band


def test_describe() -> None:
    assert describe(Kappa(48, 0.8, 0.47, 0.6234)) == "0.62 (substantial), 48 images"
    assert describe(Kappa(1, 1.0, 0.5, 1.0)) == "1.00 (almost perfect), 1 image"
    assert describe(Kappa(20, 0.3, 0.3, -0.004)) == "0.00 (slight), 20 images"
    assert describe(Kappa(20, 0.1, 0.3, -0.2857)) == "-0.29 (poor), 20 images"


def test_module_needs_neither_torch_nor_qt_nor_reference_libraries() -> None:
    loaded = modules_loaded_by(
        "import engine.agreement",
        ("torch", "PySide6", "scipy", "sklearn", "statsmodels", "pandas"),
    )
    assert loaded == []


def test_large_session_equals_references() -> None:
    """5,000 images x 5 reviewers: the integer sums stay exact at a team session's size."""
    verdicts, classes = generated(40, 5, images=5000)
    report = agreement(verdicts, classes)
    everyone = [rel for rel, codes in verdicts.items() if len(codes) == 5]
    data = np.array([[verdicts[rel][name] for name in report.reviewers] for rel in everyone])
    table = aggregate_raters(data - 1, n_cat=4)[0]
    assert report.fleiss.n == len(everyone)
    assert report.fleiss.kappa == pytest.approx(fleiss_kappa(table), abs=1e-12)
    pair = report.pairs[-1]
    both = [rel for rel, codes in verdicts.items() if pair.a in codes and pair.b in codes]
    a = [verdicts[rel][pair.a] for rel in both]
    b = [verdicts[rel][pair.b] for rel in both]
    assert pair.overall.kappa == pytest.approx(
        cohen_kappa_score(a, b, labels=[1, 2, 3, 4]), abs=1e-12
    )
