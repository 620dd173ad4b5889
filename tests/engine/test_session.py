"""Inspection sessions: verdicts, undo and history, resume, refusals, locking and SIGKILL safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.errors import InspectorError
from engine.session import (
    DEFAULT_LABELS,
    SCHEMA_VERSION,
    Session,
    SessionContext,
    VerdictView,
    default_session_path,
)
from tests.engine.session_v1 import write_v1_session

ROOT = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def _open(path: Path, weights: str = SHA, layer: str = "features", **kwargs) -> Session:
    folder = path.parent / "images"
    context = SessionContext(folder, None, weights, layer, "gradcam")
    return Session.open(path, context, reviewer="ann", **kwargs)


@pytest.fixture
def session_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions" / "s.sqlite"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_verdicts_round_trip_and_resume(session_path: Path) -> None:
    with _open(session_path) as session:
        session.record_result("a.png", "crazing", 0.91, "crazing", True, 0.62)
        session.record_result("b.png", "patches", 0.40, "crazing", False, 0.10)
        session.add_images(["c.png"])
        first = session.set_verdict("a.png", 1, note="clean hit")
        session.set_verdict("b.png", 3, corrected="crazing")
        assert (first.code, first.note, first.reviewer) == (1, "clean hit", "ann")
        assert session.progress() == (2, 3)
    with _open(session_path) as again:
        assert again.warnings == ()
        verdicts = again.verdicts()
        assert {k: (v.code, v.corrected, v.note) for k, v in verdicts.items()} == {
            "a.png": (1, None, "clean hit"),
            "b.png": (3, "crazing", None),
        }
        records = {r.rel_path: r for r in again.records()}
        assert records["b.png"].confidence == pytest.approx(0.40)
        assert records["b.png"].pointing_hit is False
        assert records["c.png"].verdict is None
        counts = {c.cls: (c.total, c.per_code) for c in again.class_counts()}
        assert counts == {
            "": (1, (0, 0, 0, 0)),
            "crazing": (1, (1, 0, 0, 0)),
            "patches": (1, (0, 0, 1, 0)),
        }


def test_records_follow_every_write_and_go_with_close(session_path: Path) -> None:
    session = _open(session_path)
    session.record_result("a.png", "crazing", 0.9, "crazing", True, 0.5)
    assert [r.verdict for r in session.records()] == [None]
    session.set_verdict("a.png", 2)
    session.record_result("b.png", "patches", 0.4)
    assert [(r.rel_path, r.verdict and r.verdict.code) for r in session.records()] == [
        ("a.png", 2),
        ("b.png", None),
    ]
    assert [(c.cls, c.per_code) for c in session.class_counts()] == [
        ("crazing", (0, 1, 0, 0)),
        ("patches", (0, 0, 0, 0)),
    ]
    session.undo()
    assert session.records()[0].verdict is None
    session.close()
    with pytest.raises(InspectorError, match="is closed"):
        session.records()


def test_open_existing_resumes_without_a_model(session_path: Path, tmp_path: Path) -> None:
    with _open(session_path) as session:
        session.set_verdict("a.png", 4, note="blurred")
    with Session.open_existing(session_path, reviewer="ann") as again:
        assert again.warnings == ()
        assert again.verdict("a.png").note == "blurred"  # type: ignore[union-attr]
        assert again.info().weights_sha256 == SHA
    missing = tmp_path / "nowhere" / "s.sqlite"
    with pytest.raises(InspectorError, match="there is no session"):
        Session.open_existing(missing)
    assert not missing.parent.exists()
    empty = tmp_path / "empty.sqlite"
    conn = sqlite3.connect(empty)
    conn.executescript("CREATE TABLE t (x); DROP TABLE t;")
    conn.close()
    before = empty.read_bytes()
    with pytest.raises(InspectorError, match="empty database, not a session"):
        Session.open_existing(empty)
    assert empty.read_bytes() == before


def test_changing_a_verdict_keeps_note_and_history(session_path: Path) -> None:
    with _open(session_path) as session:
        session.set_verdict("a.png", 2, note="heat on the edge")
        session.set_verdict("a.png", 3, corrected="scratches")
        session.set_note("a.png", "rolled edge, not a scratch")
        current = session.verdict("a.png")
        assert current is not None
        assert (current.code, current.corrected, current.note) == (
            3,
            "scratches",
            "rolled edge, not a scratch",
        )
        history = session.history("a.png")
    assert [(h.action, h.old, h.new) for h in history] == [
        ("verdict", (None, None, None), (2, None, "heat on the edge")),
        ("verdict", (2, None, "heat on the edge"), (3, "scratches", "heat on the edge")),
        (
            "note",
            (3, "scratches", "heat on the edge"),
            (3, "scratches", "rolled edge, not a scratch"),
        ),
    ]
    assert all(h.reviewer == "ann" and h.time for h in history)


def test_undo_walks_back_and_is_recorded(session_path: Path) -> None:
    with _open(session_path) as session:
        session.set_verdict("a.png", 1)
        session.set_verdict("b.png", 4)
        session.set_verdict("a.png", 2)
        assert session.undo().code == 1  # type: ignore[union-attr]
        restored = session.undo()
        assert restored is not None and restored.rel_path == "b.png" and restored.code is None
        assert session.verdict("b.png") is None
        assert session.undo().code is None  # type: ignore[union-attr]
        assert session.undo() is None
        assert session.verdicts() == {}
        history = session.history()
    assert [h.action for h in history] == ["verdict"] * 3 + ["undo"] * 3
    assert [h.undoes for h in history[3:]] == [3, 2, 1]


def test_undo_does_not_reach_an_earlier_sitting(session_path: Path) -> None:
    with _open(session_path) as session:
        session.set_verdict("a.png", 1)
    with _open(session_path) as again:
        assert again.undo() is None
        assert again.verdict("a.png").code == 1  # type: ignore[union-attr]


def test_reopening_with_other_weights_or_layer_warns(session_path: Path) -> None:
    _open(session_path).close()
    with _open(session_path, weights="cd" * 32, layer="layer4") as session:
        warnings = session.warnings
        info = session.info()
    assert len(warnings) == 2
    assert "weights sha256" in warnings[0] and "ab" * 32 in warnings[0]
    assert "layer" in warnings[1] and "'features'" in warnings[1] and "'layer4'" in warnings[1]
    assert (info.weights_sha256, info.layer, info.engine_version) == (
        SHA,
        "features",
        engine.__version__,
    )


def test_context_is_stored_with_resolved_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative folder and profile are stored absolute, so reopening from elsewhere matches."""
    monkeypatch.chdir(tmp_path)
    context = SessionContext("images", "p.toml", SHA, "features", "gradcam")
    assert context.meta() == {
        "folder": str(tmp_path.resolve() / "images"),
        "profile_path": str(tmp_path.resolve() / "p.toml"),
        "weights_sha256": SHA,
        "layer": "features",
        "method": "gradcam",
        "engine_version": engine.__version__,
    }
    assert SessionContext("images", None, SHA, "l", "m").meta()["profile_path"] == ""
    with Session.open(tmp_path / "s.sqlite", context) as session:
        info = session.info()
    assert (info.folder, info.profile_path) == (
        str(tmp_path.resolve() / "images"),
        str(tmp_path.resolve() / "p.toml"),
    )


def test_labels_default_and_configurable(session_path: Path) -> None:
    with _open(session_path) as session:
        assert session.labels == DEFAULT_LABELS
        session.set_labels(["good", "lucky", "wrong", "?"])
    with _open(session_path) as again:
        assert again.labels == ("good", "lucky", "wrong", "?")
    with pytest.raises(InspectorError, match="4 non-empty verdict labels"):
        _open(session_path, labels=["a", "b"])


def test_bad_verdicts_and_paths_are_refused(session_path: Path) -> None:
    with _open(session_path) as session:
        with pytest.raises(InspectorError, match="1, 2, 3, 4"):
            session.set_verdict("a.png", 5)
        with pytest.raises(InspectorError, match="relative"):
            session.set_verdict("/etc/passwd", 1)
        with pytest.raises(InspectorError, match="relative"):
            session.set_verdict("../x.png", 1)
    with pytest.raises(InspectorError, match="closed"):
        session.set_verdict("a.png", 1)


def test_default_path_is_per_folder_and_profile_outside_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = tmp_path / "images"
    path = default_session_path(folder, tmp_path / "a.toml")
    assert path.parent == tmp_path / "data" / "gradcam-inspector" / "sessions"
    assert path.name.startswith("images-") and path.suffix == ".sqlite"
    assert path == default_session_path(folder, tmp_path / "a.toml")
    assert path != default_session_path(folder, tmp_path / "b.toml")
    assert path != default_session_path(tmp_path / "other", tmp_path / "a.toml")
    assert not path.is_relative_to(folder)
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home_path = default_session_path(folder, None)
    assert home_path.parent == tmp_path / "home" / ".local/share/gradcam-inspector/sessions"


# --- bad input: clear message, file untouched ------------------------------------------------


def _assert_refused_untouched(path: Path, match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(InspectorError, match=match) as info:
        _open(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.sqlite"
    path.write_bytes(os.urandom(8192))
    _assert_refused_untouched(path, "not a Grad-CAM Inspector session")


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (name TEXT)")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "SQLite database but not a Grad-CAM Inspector session")


def test_newer_schema_is_refused(session_path: Path) -> None:
    _open(session_path).close()
    conn = sqlite3.connect(session_path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    _assert_refused_untouched(session_path, "newer Grad-CAM Inspector")


def test_truncated_session_is_refused(session_path: Path) -> None:
    with _open(session_path) as session:
        session.add_images(f"img{i:04d}.png" for i in range(2000))
    data = session_path.read_bytes()
    assert len(data) > 3 * 4096
    session_path.write_bytes(data[: len(data) // 2])
    _assert_refused_untouched(session_path, "truncated")


def test_damaged_page_is_refused(session_path: Path) -> None:
    with _open(session_path) as session:
        session.add_images(f"img{i:04d}.png" for i in range(2000))
    data = bytearray(session_path.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\xff" * 4096  # a b-tree page, header intact
    session_path.write_bytes(bytes(data))
    _assert_refused_untouched(session_path, "damaged")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_location_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InspectorError, match="writable"):
            _open(folder / "s.sqlite")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_read_only_session_file_is_refused(
    session_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root passes every permission check; this stands in for chmod where tests run as root."""
    _open(session_path).close()
    monkeypatch.setattr(
        "engine.session_sqlite.os.access", lambda path, mode: Path(path) != session_path
    )
    _assert_refused_untouched(session_path, "read-only")


def test_second_process_is_refused_while_open(session_path: Path) -> None:
    code = (
        "import sys\n"
        "from engine.session import Session, SessionContext\n"
        "from engine.errors import InspectorError\n"
        "try:\n"
        f"    Session.open({str(session_path)!r}, SessionContext('.', None, 'x', 'l', 'm'))\n"
        "except InspectorError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    with _open(session_path) as session:
        session.set_verdict("a.png", 1)
        before = session_path.read_bytes()
        child = subprocess.run(
            _python(code), env=_child_env(), capture_output=True, text=True, timeout=60
        )
        assert child.returncode == 3, child.stderr
        assert "open in another window or process" in child.stdout
        assert session_path.read_bytes() == before
        assert session.verdict("a.png").code == 1  # type: ignore[union-attr]
    child = subprocess.run(_python(code), env=_child_env(), capture_output=True, timeout=60)
    assert child.returncode == 0, child.stderr


# --- durability ---------------------------------------------------------------------------


SIGKILL_CHILD = """
import sys
from engine.session import Session, SessionContext
context = SessionContext('.', None, 'x', 'features', 'gradcam')
session = Session.open(sys.argv[1], context, reviewer='bot')
for i in range(100000):
    session.set_verdict(f"img{i:05d}.png", i % 4 + 1, note=f"note {i}")
    print(f"recorded {i}", flush=True)
"""


@pytest.mark.parametrize("kill_after", [1, 40, 300])
def test_every_verdict_reported_as_recorded_survives_sigkill(
    session_path: Path, kill_after: int
) -> None:
    session_path.parent.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-c", SIGKILL_CHILD, str(session_path)],
        env=_child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported: list[int] = []
    try:
        for line in child.stdout:
            reported.append(int(line.split()[1]))
            if len(reported) == kill_after:
                break
    finally:
        child.send_signal(signal.SIGKILL)  # mid-commit of a later verdict, most likely
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert len(reported) == kill_after
    with Session.open_existing(session_path, reviewer="bot") as session:
        verdicts = session.verdicts()
    for i in reported:
        verdict = verdicts[f"img{i:05d}.png"]
        assert (verdict.code, verdict.note, verdict.reviewer) == (i % 4 + 1, f"note {i}", "bot")
    assert len(verdicts) >= len(reported)


# --- the lock on each platform ------------------------------------------------------------


def test_lock_function_follows_the_platform() -> None:
    from engine import file_lock as module

    assert module.lock_function("win32") is module._msvcrt_lock
    assert module.lock_function("linux") is module._flock
    assert module.lock_function("darwin") is module._flock
    assert module.try_lock is module.lock_function(sys.platform)


class _FakeMsvcrt:
    """Stands in for Windows' msvcrt: one process-wide table of locked (file, byte) ranges."""

    LK_NBLCK = 2

    def __init__(self) -> None:
        self.held: dict[tuple[int, int], int] = {}  # (inode, first byte) -> fd holding it
        self.calls: list[tuple[int, int, int]] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        position = os.lseek(fd, 0, os.SEEK_CUR)
        self.calls.append((position, mode, nbytes))
        key = (os.fstat(fd).st_ino, position)
        holder = self.held.get(key)
        if holder is not None and holder != fd:
            raise PermissionError(13, "Permission denied")
        self.held[key] = fd


def test_windows_lock_refuses_a_second_open_and_keeps_the_first(
    session_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The msvcrt path as far as Linux can run it: one byte SQLite never reads or writes,
    non-blocking, refusal message."""
    from engine import file_lock as module

    fake = _FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(module, "try_lock", module.lock_function("win32"))
    with _open(session_path) as session:
        session.set_verdict("a.png", 2)
        with pytest.raises(InspectorError, match="open in another window or process"):
            _open(session_path)
        assert session.verdict("a.png").code == 2  # type: ignore[union-attr]
    # Locked at the offset even though append mode left the position at the end of the file.
    offset = module.WINDOWS_LOCK_OFFSET
    assert fake.calls == [(offset, fake.LK_NBLCK, 1), (offset, fake.LK_NBLCK, 1)]


def test_session_module_imports_without_fcntl() -> None:
    """Windows has no fcntl: importing the module (and so the app) must not need it."""
    code = "import sys; sys.modules['fcntl'] = None; import engine.session; print('ok')"
    child = subprocess.run(_python(code), env=_child_env(), capture_output=True, text=True)
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr


def test_a_verdict_keeps_the_map_it_was_given_on(session_path: Path) -> None:
    view = VerdictView("layer3", "gradcam++", 2, 4.0)
    with _open(session_path) as s:
        s.set_verdict("a.png", 3, view=view)
        s.set_note("a.png", "heat on the roller")  # a note keeps the verdict's map
        s.set_verdict("a.png", 3, corrected="crazing")  # so does re-recording without one
        s.set_verdict("b.png", 2)  # none recorded
        s.set_verdict("c.png", 2, view=VerdictView("layer4", "gradcam"))
        s.set_verdict("c.png", 4, view=VerdictView("layer4", "gradcam"))
        s.undo()  # back to c's 2: the map of that verdict was not kept
        assert s.verdict_views() == {"a.png": view}
    with _open(session_path) as s:  # and it is read back after a restart
        assert s.verdict_views() == {"a.png": view}


def test_an_undone_verdict_never_takes_a_map_from_the_same_millisecond(
    session_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Views match verdicts by time (milliseconds): a fast undo used to pick up the undone
    verdict's map when both fell in one millisecond."""
    monkeypatch.setattr("engine.session._now", lambda: "2026-11-30T10:00:00.000+00:00")
    with _open(session_path) as s:
        s.set_verdict("c.png", 2, view=VerdictView("layer4", "gradcam"))
        s.set_verdict("c.png", 4, view=VerdictView("layer3", "gradcam"))
        s.undo()
        assert s.verdict_views() == {}


def test_a_stale_view_is_ignored(session_path: Path) -> None:
    with _open(session_path) as s:
        s.set_verdict("a.png", 2, view=VerdictView("layer3", "gradcam"))
        s.set_verdict("b.png", 3, view=VerdictView("layer3", "gradcam"))
    conn = sqlite3.connect(session_path)
    # Something that does not know the views table changes b's verdict...
    conn.execute("UPDATE verdicts SET code = 4, time = 'later' WHERE rel_path = 'b.png'")
    conn.commit()
    conn.close()
    with _open(session_path) as s:
        assert set(s.verdict_views()) == {"a.png"}  # ...so b's old map is not used


@pytest.mark.parametrize("with_views", [True, False])
def test_a_version_0_1_session_is_upgraded_in_place(session_path: Path, with_views: bool) -> None:
    session_path.parent.mkdir(parents=True)
    write_v1_session(session_path, with_views)
    with Session.open_existing(session_path, reviewer="ann") as s:
        assert {k: (v.code, v.corrected, v.note) for k, v in s.verdicts().items()} == {
            "a.png": (1, None, "on the crack"),
            "b.png": (3, "patches", None),
        }
        history = s.history()
        assert [(h.id, h.action, h.undoes, h.reviewer) for h in history] == [
            (1, "verdict", None, "ann"),
            (2, "verdict", None, "ann"),
            (3, "verdict", None, "ann"),
            (4, "undo", 3, "ann"),
            (5, "verdict", None, "ann"),
        ]
        assert history[1].old == (2, None, None) and history[1].new == (1, None, "on the crack")
        views = {"a.png": VerdictView("layer3", "gradcam", "pred", 1.5)} if with_views else {}
        assert s.verdict_views() == views
        assert s.labels == ("good", "elsewhere", "wrong", "unsure")
        assert s.info().created == "2026-11-01T10:00:00.000+00:00"
        assert s.progress() == (2, 3)
        # The upgraded session takes new work: a second reviewer, history ids continuing.
        s.set_verdict("c.png", 2)
        assert s.history("c.png")[0].id == 6
    conn = sqlite3.connect(session_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
    uids = [r[0] for r in conn.execute("SELECT uid FROM history ORDER BY id")]
    conn.close()
    assert len(set(uids)) == 6
    with Session.open_existing(session_path, reviewer="bob") as again:  # opens without upgrading
        assert again.verdicts() == {} and set(again.all_verdicts()) == {"a.png", "b.png", "c.png"}


def test_a_version_0_1_session_opened_read_only_is_read_not_written(
    session_path: Path,
) -> None:
    session_path.parent.mkdir(parents=True)
    write_v1_session(session_path)
    before = session_path.read_bytes()
    with Session.open_existing(session_path, reviewer="ann", read_only=True) as s:
        assert s.verdict("a.png").note == "on the crack"  # type: ignore[union-attr]
        assert [r.verdict.code if r.verdict else None for r in s.records()] == [1, 3, None]
    assert session_path.read_bytes() == before
    assert sorted(p.name for p in session_path.parent.iterdir()) == ["s.sqlite"]
