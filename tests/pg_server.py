"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temporary cluster per run.

``start_server()`` runs initdb in a fresh temporary directory and starts ``postgres`` on a free
port of 127.0.0.1 and on a unix socket in that directory, so it never touches (or depends on) a
cluster the Debian package may have made itself. As root the server runs as the ``postgres`` OS
user, because initdb and postgres refuse to run as root.

Authentication: the socket trusts anyone (the superuser ``postgres`` creates the databases over
it); TCP on 127.0.0.1 wants a scram-sha-256 password, so tests reach the server as ``TEST_ROLE``
with ``TEST_PASSWORD`` the way a user would, and a wrong password is refused.

Several processes against one database (the concurrency tests): use
``multiprocessing.get_context("spawn")`` (fork would copy the parent's open connections and
sockets), give each ``Process`` a module-level target taking the URL string, and let the child
open its own connection. Children inherit ``os.environ`` at start, so the ``PGPASSWORD`` that
the ``pg_url`` fixture sets reaches them. Kill one with ``os.kill(p.pid, signal.SIGKILL)``: the
server rolls back its open transaction when the socket closes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pwd

TEST_ROLE = "inspector"
# A test password, on a server bound to 127.0.0.1 that lives as long as the test run.
TEST_PASSWORD = "grad-cam-test-pw"
SUPERUSER = "postgres"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
# pg_ctl start -w gives up after this many seconds; a cold start takes well under one.
START_TIMEOUT_S = 60
PORT_ATTEMPTS = 3

HBA = f"""\
local all all trust
host all {SUPERUSER} 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
"""


class ServerUnavailable(Exception):
    """PostgreSQL cannot run here at all (binaries or the OS user missing): a reason to skip."""


@dataclass(frozen=True)
class PgServer:
    """A running test server: where it listens and who may log in over TCP."""

    bin_dir: Path
    base_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = TEST_ROLE
    password: str = TEST_PASSWORD

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate: the root a client verifies TLS against."""
        return self.base_dir / "server.crt"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    def url(self, dbname: str) -> str:
        """The TCP URL of ``dbname`` without the password (it comes from PGPASSWORD)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the superuser over the socket, outside a transaction."""
        import psycopg

        conninfo = f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A new empty database owned by the test role; its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f"CREATE DATABASE {name} OWNER {self.user}")
        return name

    def drop_database(self, name: str) -> None:
        # FORCE ends connections a test left open, so one leak does not fail the next test.
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def find_bin_dir() -> Path:
    """The newest Debian PostgreSQL bin directory that holds initdb."""
    found = sorted(
        (p.parent for p in DEBIAN_ROOT.glob("*/bin/initdb")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1,
    )
    if found:
        return found[-1]
    local = shutil.which("initdb")
    if local:
        return Path(local).resolve().parent
    raise ServerUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): "
        "install Debian's postgresql package"
    )


def _server_account() -> pwd.struct_passwd | None:
    """The OS account to run the server as: ``postgres`` when we are root, else ourselves."""
    # Windows has neither geteuid nor pwd (nor a root to avoid).
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerUnavailable(
            "running as root and there is no 'postgres' OS user to run the server as"
        ) from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], account: pwd.struct_passwd | None, cwd: Path) -> None:
    """Run a server tool as ``account``; its output becomes the error when it fails."""
    ids = {}
    if account is not None:
        ids = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, **ids)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}):\n{done.stderr}")


def _initdb(bin_dir: Path, base: Path, account: pwd.struct_passwd | None) -> None:
    args = [str(bin_dir / "initdb"), "-D", str(base / "data"), "-U", SUPERUSER]
    args += ["-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
    _run(args, account, base)
    (base / "data" / "pg_hba.conf").write_text(HBA, encoding="utf-8")
    _certificate(base, account)


def _certificate(base: Path, account: pwd.struct_passwd | None) -> None:
    """A self-signed certificate for 127.0.0.1, so clients can ask for TLS (sslmode=verify-full)."""
    key, crt = base / "data" / "server.key", base / "server.crt"
    args = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    args += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    args += ["-keyout", str(key), "-out", str(crt)]
    subprocess.run(args, capture_output=True, check=True)
    key.chmod(0o600)  # the server refuses a key others can read
    if account is not None:
        os.chown(key, account.pw_uid, account.pw_gid)


def _pg_ctl_start(server: PgServer, account: pwd.struct_passwd | None) -> bool:
    """Start the server; False when the port was taken meanwhile (the caller picks another)."""
    # fsync off: the tests kill clients, never the server, and per-verdict commits stay fast.
    options = (
        f"-p {server.port} -c listen_addresses=127.0.0.1 "
        f"-c unix_socket_directories={server.socket_dir} -c fsync=off "
        f"-c ssl=on -c ssl_cert_file={server.ca_file} -c ssl_key_file=server.key"
    )
    log = server.base_dir / "server.log"
    # pg_ctl appends: a log of an earlier attempt would make every failure look like a taken port.
    log.unlink(missing_ok=True)
    args = [str(server.bin_dir / "pg_ctl"), "start", "-w", "-t", str(START_TIMEOUT_S)]
    args += ["-D", str(server.data_dir), "-l", str(log), "-o", options]
    try:
        _run(args, account, server.base_dir)
    except RuntimeError as exc:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if "Address already in use" in text:
            return False
        raise RuntimeError(f"{exc}\nserver log:\n{text}") from exc
    return True


def start_server() -> PgServer:
    """initdb a temporary cluster, start it, create the test role. Stop it with stop_server."""
    bin_dir = find_bin_dir()
    account = _server_account()
    # Not under pytest's tmp_path: as root that sits in a 0700 directory postgres cannot enter.
    base = Path(tempfile.mkdtemp(prefix="gradcam-pg-"))
    try:
        (base / "socket").mkdir()
        if account is not None:
            for path in (base, base / "socket"):
                os.chown(path, account.pw_uid, account.pw_gid)
        _initdb(bin_dir, base, account)
        for _ in range(PORT_ATTEMPTS):
            server = PgServer(bin_dir, base, _free_port())
            if _pg_ctl_start(server, account):
                break
        else:
            raise RuntimeError(f"no free port for PostgreSQL after {PORT_ATTEMPTS} attempts")
        server.admin(f"CREATE ROLE {TEST_ROLE} LOGIN PASSWORD '{TEST_PASSWORD}'")
    except BaseException:
        stop_server(base, bin_dir)
        raise
    return server


def stop_server(base: Path, bin_dir: Path) -> None:
    """Stop the server if it runs (immediate: nothing in it needs a clean shutdown); delete it."""
    if (base / "data" / "postmaster.pid").exists():
        args = [str(bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(base / "data")]
        _run(args, _server_account(), base)
    shutil.rmtree(base)
