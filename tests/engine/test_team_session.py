"""Team sessions on a real PostgreSQL server: reviewers side by side, blind mode, adjudication,
undo per reviewer, one window per reviewer name, refusals in one line; the same on SQLite."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from engine.errors import InspectorError
from engine.session import Session, SessionContext, VerdictView
from tests.pg_server import PgServer

SHA = "cd" * 32


def _context(folder: str = "/data/neu") -> SessionContext:
    return SessionContext(folder, None, SHA, "layer4", "gradcam")


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same behaviour is asked of both stores."""
    if request.param == "sqlite":
        return str(tmp_path / "team.sqlite")
    return request.getfixturevalue("pg_url")


def test_reviewers_keep_their_own_verdicts_side_by_side(location: str) -> None:
    with Session.open(location, _context(), reviewer="ann") as ann:
        ann.record_result("a.png", "crazing", 0.9)
        ann.record_result("b.png", "patches", 0.8)
        ann.set_verdict("a.png", 1, view=VerdictView("layer4", "gradcam"))
        ann.set_verdict("b.png", 2, note="edge")
    with Session.open(location, _context(), reviewer="bob") as bob:
        assert bob.verdicts() == {} and bob.progress() == (0, 2)
        bob.set_verdict("a.png", 1)
        bob.set_verdict("b.png", 3, corrected="crazing")
        everyone = bob.all_verdicts()
        assert {rel: {w: v.code for w, v in by.items()} for rel, by in everyone.items()} == {
            "a.png": {"ann": 1, "bob": 1},
            "b.png": {"ann": 2, "bob": 3},
        }
        assert bob.reviewers() == ["ann", "bob"]
        assert bob.disagreements() == {"b.png"}
        finals = {r.rel_path: r.verdict for r in bob.records()}
        assert finals["a.png"] is not None and finals["a.png"].code == 1
        assert finals["b.png"] is None  # disputed, not settled
        assert [r.disputed for r in bob.records()] == [False, True]
        assert bob.info().reviewers == ("ann", "bob")
        # bob's undo touches only bob's verdict
        undone = bob.undo()
        assert undone is not None and undone.code is None and undone.rel_path == "b.png"
        assert bob.undo() is not None and bob.undo() is None
        assert {r: {w: v.code for w, v in by.items()} for r, by in bob.all_verdicts().items()} == {
            "a.png": {"ann": 1},
            "b.png": {"ann": 2},
        }
        assert bob.verdict_views() == {"a.png": VerdictView("layer4", "gradcam")}


def test_blind_mode_hides_others_until_the_reviewer_has_given_theirs(location: str) -> None:
    with Session.open(location, _context(), reviewer="ann") as ann:
        ann.set_verdict("a.png", 4)
        ann.set_blind(True)
    with Session.open(location, _context(), reviewer="bob") as bob:
        assert bob.blind
        assert bob.others("a.png") == []
        bob.set_note("a.png", "looking")  # a note is not a verdict: still hidden
        assert bob.others("a.png") == []
        bob.set_verdict("a.png", 2)
        assert [(v.reviewer, v.code) for v in bob.others("a.png")] == [("ann", 4)]
        bob.set_blind(False)
    with Session.open(location, _context(), reviewer="cy") as cy:
        assert [(v.reviewer, v.code) for v in cy.others("a.png")] == [("ann", 4), ("bob", 2)]


def test_adjudication_settles_a_disagreement_and_undo_reverts_it(location: str) -> None:
    with Session.open(location, _context(), reviewer="ann") as ann:
        ann.record_result("a.png", "crazing", 0.9)
        ann.set_verdict("a.png", 1)
    with Session.open(location, _context(), reviewer="bob") as bob:
        bob.set_verdict("a.png", 3, corrected="patches")
    with Session.open(location, _context(), reviewer="lead") as lead:
        settled = lead.adjudicate("a.png", 3, corrected="patches", note="bob is right")
        assert (settled.lead, settled.code) == ("lead", 3)
        record = lead.records()[0]
        assert record.verdict is not None and (record.verdict.code, record.verdict.reviewer) == (
            3,
            "lead",
        )
        assert record.adjudication == settled and record.disputed
        assert lead.disagreements() == {"a.png"}  # still a disagreement, now settled
        lead.undo()
        assert lead.adjudication("a.png") is None and lead.records()[0].verdict is None
        lead.adjudicate("a.png", 1)
        lead.clear_adjudication("a.png")
        assert lead.adjudications() == {}
        actions = [(h.action, h.reviewer) for h in lead.history("a.png")]
        assert actions[-4:] == [
            ("adjudicate", "lead"),
            ("undo", "lead"),
            ("adjudicate", "lead"),
            ("adjudicate", "lead"),
        ]


def test_a_team_session_refuses_a_second_window_under_the_same_name(pg_url: str) -> None:
    with Session.open(pg_url, _context(), reviewer="ann"):
        with pytest.raises(InspectorError, match="reviewer 'ann' is already reviewing"):
            Session.open(pg_url, _context(), reviewer="ann")
        with Session.open(pg_url, _context(), reviewer="bob") as bob:  # another name is fine
            assert bob.is_team and bob.path is None
        with Session.open_existing(pg_url, reviewer="ann", read_only=True) as report:
            assert report.verdicts() == {}  # a report under the same name takes no lock
    with Session.open(pg_url, _context(), reviewer="ann"):  # released on close
        pass


def test_team_session_folder_differs_per_machine_but_weights_are_checked(pg_url: str) -> None:
    with Session.open(pg_url, _context("/home/ann/neu"), reviewer="ann"):
        pass
    other = SessionContext("/mnt/bob/neu", None, "ef" * 32, "layer4", "gradcam")
    with Session.open(pg_url, other, reviewer="bob") as bob:
        assert len(bob.warnings) == 1 and bob.warnings[0].startswith("weights sha256 changed")


def test_wrong_password_is_one_line_without_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(InspectorError) as info:
        Session.open(pg_url, _context(), reviewer="ann", password="not-the-password")
    message = str(info.value)
    assert "\n" not in message and "not-the-password" not in message
    assert message.startswith(f"cannot reach team session '{pg_url}'")
    assert "password authentication failed" in message


def test_password_in_the_url_never_shows(pg_url: str, pg_server: PgServer) -> None:
    with_password = pg_url.replace("inspector@", f"inspector:{pg_server.password}@")
    with Session.open(with_password, _context(), reviewer="ann") as ann:
        assert pg_server.password not in ann.location
        assert pg_server.password not in str(ann.info().path)
        assert ann.location == pg_url


def test_unreachable_server_and_missing_database_are_one_line(pg_url: str) -> None:
    closed = "postgresql://inspector@127.0.0.1:1/x"
    with pytest.raises(InspectorError, match=r"^cannot reach team session .*Connection refused"):
        Session.open(closed, _context())
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(InspectorError, match='database "no_such_db" does not exist'):
        Session.open(missing, _context())


def test_a_database_with_other_tables_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url.replace("postgresql://", "postgresql://", 1)) as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")
    with pytest.raises(InspectorError, match="holds other tables and is not a Grad-CAM"):
        Session.open(pg_url, _context())


def test_an_empty_team_database_needs_a_model_to_start(pg_url: str) -> None:
    with pytest.raises(InspectorError, match="there is no session in"):
        Session.open_existing(pg_url)


def test_the_team_schema_is_the_same_revision_as_a_file(pg_url: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, inspect

    from engine import session_pg

    Session.open(pg_url, _context()).close()
    Session.open(tmp_path / "s.sqlite", _context()).close()
    shapes = []
    for url in (session_pg.parse(pg_url), f"sqlite:///{tmp_path / 's.sqlite'}"):
        engine_ = create_engine(url)
        with engine_.connect() as conn:
            look = inspect(conn)
            shapes.append(
                {
                    t: (
                        [c["name"] for c in look.get_columns(t)],
                        look.get_pk_constraint(t)["constrained_columns"],
                    )
                    for t in sorted(look.get_table_names())
                }
            )
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            assert revision == "0002"
        engine_.dispose()
    assert shapes[0] == shapes[1]
    assert shapes[0]["verdicts"][1] == ["rel_path", "reviewer"]


def test_tls_options_in_the_url_reach_the_server(pg_url: str, pg_server: PgServer) -> None:
    if not pg_server.ca_file.exists():
        pytest.skip("no openssl here to make the test server's certificate")
    verified = f"{pg_url}?sslmode=verify-full&sslrootcert={pg_server.ca_file}"
    with Session.open(verified, _context(), reviewer="ann") as ann:
        assert ann.location == verified  # TLS options are not secret: shown as given
        with ann._live.engine.connect() as conn:
            used = conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert used.scalar() is True


def test_tls_with_the_wrong_root_certificate_is_one_line(pg_url: str, tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "other.crt"
    args = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    args += ["-subj", "/CN=elsewhere", "-keyout", str(tmp_path / "k"), "-out", str(other)]
    subprocess.run(args, capture_output=True, check=True)
    with pytest.raises(InspectorError) as info:
        Session.open(f"{pg_url}?sslmode=verify-full&sslrootcert={other}", _context())
    assert "\n" not in str(info.value) and "certificate verify failed" in str(info.value)


def test_the_same_code_with_other_corrected_classes_is_a_disagreement(location: str) -> None:
    with Session.open(location, _context(), reviewer="ann") as ann:
        ann.set_verdict("a.png", 3, corrected="patches")
    with Session.open(location, _context(), reviewer="bob") as bob:
        bob.set_verdict("a.png", 3, corrected="crazing")
        record = bob.records()[0]
        assert bob.disagreements() == {"a.png"} and record.disputed and record.verdict is None
        bob.set_verdict("a.png", 3, corrected="patches")
        record = bob.records()[0]
        assert bob.disagreements() == set() and not record.disputed
        assert record.verdict is not None and record.verdict.corrected == "patches"


def test_refresh_tells_whether_anyone_wrote(location: str) -> None:
    with Session.open(location, _context(), reviewer="ann") as ann:
        assert ann.refresh() is True  # the first look
        assert ann.refresh() is False
        ann.set_verdict("a.png", 1)
        assert ann.refresh() is True and ann.refresh() is False
        ann.set_blind(True)
        assert ann.refresh() is True
        ann.add_images(["b.png"])
        assert ann.refresh() is True and ann.refresh() is False


def _end_lock_connections(pg_server: PgServer, url: str) -> None:
    """What a server restart or a network cut does to the connections holding locks."""
    database = url.rsplit("/", 1)[1]
    pg_server.admin(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a"
        f" ON a.pid = l.pid WHERE l.locktype = 'advisory' AND a.datname = '{database}'"
    )


def test_a_lost_reviewer_lock_is_taken_again_or_the_write_refused(
    pg_url: str, pg_server: PgServer
) -> None:
    with Session.open(pg_url, _context(), reviewer="ann") as ann:
        ann.set_verdict("a.png", 1)
        _end_lock_connections(pg_server, pg_url)
        ann.set_verdict("a.png", 2)  # the lock is taken again before the write
        with pytest.raises(InspectorError, match="reviewer 'ann' is already reviewing"):
            Session.open(pg_url, _context(), reviewer="ann")
        _end_lock_connections(pg_server, pg_url)
        with Session.open(pg_url, _context(), reviewer="ann") as twin:  # took the free name
            with pytest.raises(InspectorError, match="reviewer 'ann' is already reviewing"):
                ann.set_verdict("a.png", 3)
            assert twin.verdict("a.png").code == 2  # type: ignore[union-attr]


def test_a_verdict_is_one_transaction_of_few_statements(pg_url: str) -> None:
    """Each statement is a round trip to the server: on a remote team session they are what a
    key press waits for. One checkout, the lock check, the old state, the verdict, its history
    entry, its map, and the transaction's begin and commit."""
    from sqlalchemy import event

    with Session.open(pg_url, _context(), reviewer="ann") as ann:
        ann.add_images(["a.png", "b.png"])
        engine_ = ann._live.engine
        seen: list[str] = []
        event.listen(engine_, "before_cursor_execute", lambda *a, **k: seen.append(a[2]))
        event.listen(engine_, "checkout", lambda *a: seen.append("checkout"))
        ann.set_verdict("a.png", 2, view=VerdictView("layer4", "gradcam"))
        assert seen.count("checkout") == 1
        assert len(seen) == 1 + 5  # the checkout; then the lock, old state, verdict, history, map
        assert ann.verdict("a.png").code == 2  # type: ignore[union-attr]
