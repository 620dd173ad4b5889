"""The tests' own PostgreSQL server: password logins, fresh databases, clients killed mid-write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests import pg_server as pg
from tests.pg_server import PgServer

# A child waits this long for its kill; the parent never waits that long in a passing run.
CHILD_WAIT_S = 120


def _one(url: str, sql: str, **kwargs: object) -> tuple:
    with psycopg.connect(url, **kwargs) as conn:
        return conn.execute(sql).fetchone()


def test_password_login_over_tcp(pg_server: PgServer, pg_url: str) -> None:
    assert pg_server.password not in pg_url
    # The password comes from PGPASSWORD, which pg_url set.
    assert _one(pg_url, "SELECT current_user") == (pg_server.user,)
    assert _one(pg_url, "SELECT 40 + 2", password=pg_server.password) == (42,)


def test_wrong_password_is_refused(pg_server: PgServer, pg_url: str) -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(pg_url, password="not-the-password")
    assert f'password authentication failed for user "{pg_server.user}"' in str(caught.value)


def test_no_password_is_refused(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(pg_url)


def test_each_pg_url_is_a_fresh_empty_database(pg_server: PgServer, pg_url: str) -> None:
    other_name = pg_server.create_database()
    other = pg_server.url(other_name)
    try:
        with psycopg.connect(pg_url) as conn:
            conn.execute("CREATE TABLE verdicts (rel_path text PRIMARY KEY)")
            conn.execute("INSERT INTO verdicts VALUES ('a.png')")
        tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        assert _one(pg_url, tables) == (1,)
        assert _one(other, tables) == (0,)
        assert _one(pg_url, "SELECT current_database()") != _one(other, "SELECT current_database()")
    finally:
        pg_server.drop_database(other_name)


def _insert_and_wait(url: str, ready: multiprocessing.synchronize.Event) -> None:
    """A spawned child: insert a row, leave its transaction open, wait to be killed."""
    conn = psycopg.connect(url)
    conn.execute("INSERT INTO verdicts VALUES ('a.png', 'killed')")
    ready.set()
    time.sleep(CHILD_WAIT_S)


def test_server_survives_a_client_killed_mid_transaction(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE verdicts (rel_path text PRIMARY KEY, reviewer text)")
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    child = spawn.Process(target=_insert_and_wait, args=(pg_url, ready))
    child.start()
    try:
        assert ready.wait(CHILD_WAIT_S), "the child never inserted its row"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join()
    assert child.exitcode == -signal.SIGKILL
    with psycopg.connect(pg_url) as conn:
        # The same key goes in: the dead client's row lock is gone (an error, not a hang, if not).
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("INSERT INTO verdicts VALUES ('a.png', 'alive')")
        assert conn.execute("SELECT * FROM verdicts").fetchall() == [("a.png", "alive")]
    assert _one(pg_url, "SELECT 1") == (1,)


def test_newest_debian_version_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for version in ("9", "15", "16", "common"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    monkeypatch.setattr(pg, "DEBIAN_ROOT", tmp_path)
    assert pg.find_bin_dir() == tmp_path / "16" / "bin"


def test_no_binaries_is_a_reason_to_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "DEBIAN_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pg.ServerUnavailable, match="install Debian's postgresql package"):
        pg.find_bin_dir()
