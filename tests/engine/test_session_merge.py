"""`session merge`: offline reviews into one session (a file or PostgreSQL); merging twice
changes nothing; conflicts and refusals are told in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import EXIT_OK, EXIT_USAGE, run
from engine.errors import InspectorError
from engine.session import Session, SessionContext, VerdictView
from engine.session_merge import merge

SHA = "ab" * 32
TABLES = ("images", "verdicts", "history", "adjudications", "verdict_views")


def _context(folder: str) -> SessionContext:
    return SessionContext(folder, None, SHA, "layer4", "gradcam")


def _offline(path: Path, reviewer: str, codes: dict[str, int], folder: str) -> Path:
    """A reviewer's own session on a disconnected machine (its own folder path)."""
    with Session.open(path, _context(folder), reviewer=reviewer, labels=LABELS) as s:
        s.record_result("a.png", "crazing", 0.9, "crazing", True, 0.5)
        for rel, code in codes.items():
            s.set_verdict(rel, code, view=VerdictView("layer4", "gradcam"))
        s.set_verdict(next(iter(codes)), 4)
        s.undo()  # an undo entry that must keep pointing at its own entry after the merge
    return path


LABELS = ("good", "elsewhere", "wrong", "unsure")


def _dump(location: str | Path) -> dict[str, list[tuple]]:
    with Session.open_existing(location, reviewer="check", read_only=True) as s:
        rows = {name: s.table(name) for name in TABLES}
    # ids are the target's own; everything else must match exactly
    return {
        name: sorted(tuple(v for k, v in row.items() if k not in ("id", "undoes")) for row in r)
        for name, r in rows.items()
    }


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    a = _offline(tmp_path / "ann.sqlite", "ann", {"a.png": 1, "b.png": 2}, "/home/ann/neu")
    b = _offline(tmp_path / "bob.sqlite", "bob", {"a.png": 1, "b.png": 3, "c.png": 2}, "/m/neu")
    return [a, b]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "team.sqlite")
    return request.getfixturevalue("pg_url")


def test_merge_brings_every_reviewer_and_twice_changes_nothing(
    sources: list[Path], target: str
) -> None:
    first = merge(sources, target)
    assert (first.images, first.verdicts, first.views) == (3, 5, 3)  # undone: no view
    assert first.history == (2 + 1 + 1) + (3 + 1 + 1)  # verdicts, the 4, its undo
    assert first.conflicts == [] and first.warnings == []
    once = _dump(target)
    again = merge(sources, target)
    assert again.changed == 0 and again.conflicts == []
    assert _dump(target) == once
    with Session.open_existing(target, reviewer="lead") as team:
        codes = {rel: {w: v.code for w, v in by.items()} for rel, by in team.all_verdicts().items()}
        assert codes == {
            "a.png": {"ann": 1, "bob": 1},
            "b.png": {"ann": 2, "bob": 3},
            "c.png": {"bob": 2},
        }
        assert team.labels == LABELS
        assert team.disagreements() == {"b.png"}
        undo = [h for h in team.history() if h.action == "undo"]
        by_id = {h.id: h for h in team.history()}
        assert len(undo) == 2
        for entry in undo:  # each undo points at its own reviewer's undone verdict
            undone = by_id[entry.undoes]  # type: ignore[index]
            assert (undone.reviewer, undone.new[0]) == (entry.reviewer, 4)


def test_a_later_verdict_of_the_same_reviewer_wins_and_is_reported(tmp_path: Path) -> None:
    early = _offline(tmp_path / "laptop.sqlite", "ann", {"a.png": 1}, "/l/neu")
    late = _offline(tmp_path / "desk.sqlite", "ann", {"a.png": 3}, "/d/neu")
    into = tmp_path / "team.sqlite"
    counts = merge([late, early], into)
    assert len(counts.conflicts) == 1 and "'ann' judged 'a.png' differently" in counts.conflicts[0]
    with Session.open_existing(into, reviewer="ann") as team:
        assert team.verdict("a.png").code == 3  # type: ignore[union-attr]


def test_merge_refuses_other_labels_and_itself(sources: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with Session.open(other, _context("/x"), reviewer="cy", labels=("a", "b", "c", "d")) as s:
        s.set_verdict("a.png", 1)
    into = tmp_path / "team.sqlite"
    merge(sources, into)
    before = _dump(into)
    with pytest.raises(InspectorError, match="has other verdict labels"):
        merge([other], into)
    assert _dump(into) == before
    with pytest.raises(InspectorError, match="is the target session itself"):
        merge([into], into)


def test_cli_merge_and_its_errors(
    sources: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "team.sqlite"
    argv = ["session", "merge", *map(str, sources), "--into", str(into)]
    assert run(argv) == EXIT_OK
    assert capsys.readouterr().err.startswith(f"merged into {into}: 3 images, 5 verdicts")
    assert run(argv) == EXIT_OK
    assert "0 images, 0 verdicts, 0 adjudications, 0 views and 0 history" in (
        capsys.readouterr().err
    )
    missing = tmp_path / "nope.sqlite"
    assert run(["session", "merge", str(missing), "--into", str(into)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: there is no session at '{missing}'; check the path"]


def test_a_source_contradicting_what_the_target_holds_is_reported(tmp_path: Path) -> None:
    into = tmp_path / "team.sqlite"
    merge([_offline(tmp_path / "desk.sqlite", "ann", {"a.png": 3}, "/d/neu")], into)
    laptop = _offline(tmp_path / "laptop.sqlite", "ann", {"a.png": 1}, "/l/neu")
    counts = merge([laptop], into)
    assert len(counts.conflicts) == 1 and "'ann' judged 'a.png' differently" in counts.conflicts[0]
    assert f"in '{into}' and '{laptop}'" in counts.conflicts[0]
