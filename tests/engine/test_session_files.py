"""Tests for engine/session.py as one file: the lock follows the file, copies carry every
verdict, damaged files stay untouched, damaged rows are one line, read-only media are read."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.cli import EXIT_USAGE, run
from engine.errors import InspectorError
from engine.session import Session, SessionContext


def _open(path: Path) -> Session:
    context = SessionContext(path.parent / "images", None, "ab" * 32, "features", "gradcam")
    return Session.open(path, context, reviewer="ann")


@pytest.fixture
def session_path(tmp_path: Path) -> Path:
    path = tmp_path / "sessions" / "s.sqlite"
    with _open(path) as session:
        session.record_result("a.png", "crazing", 0.9, "crazing", True, 0.5)
        session.set_verdict("a.png", 2, note="first")
    return path


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_another_name_for_an_open_session_is_refused(session_path: Path, link: str) -> None:
    other = session_path.with_name("other.sqlite")
    (os.link if link == "hard" else os.symlink)(session_path, other)
    with _open(session_path) as session:
        with pytest.raises(InspectorError, match="open in another window or process"):
            _open(other)
        session.set_verdict("a.png", 3)
    with _open(other) as again:
        assert again.verdict("a.png").code == 3  # type: ignore[union-attr]
        assert again._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_copying_the_one_file_copies_every_committed_verdict(
    session_path: Path, tmp_path: Path
) -> None:
    """Verdicts used to sit in '-wal' until close: a copy of 'the session file' was empty."""
    with _open(session_path) as session:
        session.set_verdict("a.png", 4, note="copied while open")
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(session_path, copy)  # the file alone, as a user copies it
        assert sorted(p.name for p in session_path.parent.iterdir()) == ["s.sqlite"]
    with Session.open_existing(copy, reviewer="ann") as copied:
        verdict = copied.verdict("a.png")
    assert (verdict.code, verdict.note) == (4, "copied while open")  # type: ignore[union-attr]


def _crashed_wal_session(path: Path) -> None:
    """A session of the WAL era as a crash left it: changes in '-wal', none checkpointed."""
    with _open(path) as session:
        session.add_images(f"img{i:04d}.png" for i in range(2000))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE verdicts SET note = 'in the wal' WHERE rel_path = 'a.png'")
    conn.commit()
    crash = path.parent.parent / "crash"
    crash.mkdir()
    for name in (path.name, path.name + "-wal"):
        shutil.copyfile(path.with_name(name), crash / name)
    conn.close()
    for name in (path.name, path.name + "-wal"):
        shutil.copyfile(crash / name, path.with_name(name))
    path.with_name(path.name + "-shm").unlink(missing_ok=True)


def test_a_damaged_session_with_a_wal_is_refused_without_a_byte_changed(
    session_path: Path,
) -> None:
    """Closing the check's connection used to checkpoint the WAL into the damaged file."""
    _crashed_wal_session(session_path)
    data = bytearray(session_path.read_bytes())
    data[4096 * 6 : 4096 * 7] = b"\xff" * 4096  # a b-tree page of the images table
    session_path.write_bytes(bytes(data))
    wal = session_path.with_name(session_path.name + "-wal")
    before = {p.name: p.read_bytes() for p in session_path.parent.iterdir()}
    with pytest.raises(InspectorError, match="is damaged"):
        _open(session_path)
    assert {p.name: p.read_bytes() for p in session_path.parent.iterdir()} == before
    assert wal.exists()


def test_a_healthy_wal_session_is_folded_into_the_one_file(session_path: Path) -> None:
    _crashed_wal_session(session_path)
    with _open(session_path) as session:
        assert session.verdict("a.png").note == "in the wal"  # type: ignore[union-attr]
    assert sorted(p.name for p in session_path.parent.iterdir()) == ["s.sqlite"]


def _report(
    session_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    code = run(["report", str(session_path), "--output", str(out)])
    return code, capsys.readouterr().err.strip().splitlines()


def _flip_in_note(path: Path) -> None:
    # Every copy (the verdict's row and its history entry), wherever the pages lie.
    path.write_bytes(path.read_bytes().replace(b"first", b"\xffirst"))


def _set(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_in_note, "Could not decode to UTF-8 column 'note'"),
        (
            lambda p: _set(p, "UPDATE meta SET value = 'oops' WHERE key = 'labels'"),
            "meta 'labels' is not a list of 4 labels",
        ),
        (
            lambda p: _set(p, "UPDATE images SET confidence = 'high'"),
            "result of 'a.png' has values of the wrong kind",
        ),
    ],
    ids=["flipped-byte-in-a-note", "crafted-meta-row", "confidence-as-text"],
)
def test_a_damaged_row_is_a_one_line_refusal(
    session_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, reason: str
) -> None:
    damage(session_path)
    before = session_path.read_bytes()
    code, err = _report(session_path, tmp_path / "rep", capsys)
    assert code == EXIT_USAGE
    assert len(err) == 1
    assert err[0].startswith(f"error: session '{session_path}' has a damaged row ({reason}")
    assert err[0].endswith("restore it from a backup or start a new session file")
    assert session_path.read_bytes() == before


def test_report_reads_a_session_on_read_only_media(
    session_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Stands in for read-only media where tests run as root (who passes every chmod)."""
    monkeypatch.setattr("engine.session_sqlite.os.access", lambda path, mode: not mode & os.W_OK)
    session_path.chmod(0o444)
    session_path.parent.chmod(0o555)
    before = session_path.read_bytes()
    try:
        code, err = _report(session_path, tmp_path / "rep", capsys)
        names = sorted(p.name for p in session_path.parent.iterdir())
    finally:
        session_path.parent.chmod(0o755)
    assert code == 0, err
    assert names == ["s.sqlite"] and session_path.read_bytes() == before
    rows = (tmp_path / "rep" / "report.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1].startswith("a.png,crazing,crazing,0.9000,2,,first,")


def test_a_read_only_open_refuses_writes(session_path: Path) -> None:
    with Session.open_existing(session_path, reviewer="ann", read_only=True) as session:
        with pytest.raises(InspectorError, match="cannot write session"):
            session.set_verdict("a.png", 1)
        assert session.verdict("a.png").code == 2  # type: ignore[union-attr]
