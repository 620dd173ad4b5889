"""Session store speed: one verdict (a key press) against the bare driver's one-row commit, and
the reads the Summary tab makes, on an SQLite file and (with --postgres) a team database.

    PYTHONPATH=. python benchmarks/bench_session.py --verdicts 300 --images 5000 --postgres

The floor is what the same durability costs without the application: one INSERT and a commit
through sqlite3 (rollback journal, synchronous=FULL, as sessions use) or psycopg. --postgres
starts a throwaway server from Debian's binaries (tests/pg_server.py, fsync off there).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.session import Session, SessionContext

CONTEXT = SessionContext("/data/neu", None, "ab" * 32, "layer4", "gradcam")


def _median_ms(step: Callable[[int], object], count: int) -> float:
    times = []
    for i in range(count):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _sqlite_floor(folder: Path, count: int) -> float:
    conn = sqlite3.connect(folder / "floor.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE v (rel TEXT, who TEXT, code INT, PRIMARY KEY (rel, who))")

    def one(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO v VALUES (?, 'ann', ?)", (f"img{i:05d}.png", i % 4))
        conn.execute("COMMIT")

    try:
        return _median_ms(one, count)
    finally:
        conn.close()


def _pg_floor(url: str, count: int) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE floor (rel TEXT, who TEXT, code INT, PRIMARY KEY (rel, who))")
        conn.commit()

        def one(i: int) -> None:
            conn.execute(
                "INSERT INTO floor VALUES (%s, 'ann', %s) ON CONFLICT (rel, who)"
                " DO UPDATE SET code = excluded.code",
                (f"img{i:05d}.png", i % 4),
            )
            conn.commit()

        return _median_ms(one, count)


def _store(location: str, images: int, verdicts: int) -> dict[str, float]:
    """Per-verdict time, and the Summary's reads (bob reviewed 2,000 images, ann some)."""
    rels = [f"img{i:05d}.png" for i in range(images)]
    with Session.open(location, CONTEXT, reviewer="bob") as bob:
        bob.add_images(rels)
        for i, rel in enumerate(rels[:2000]):
            bob.set_verdict(rel, (i + 1) % 4 + 1)
    with Session.open(location, CONTEXT, reviewer="ann") as ann:
        verdict = _median_ms(lambda i: ann.set_verdict(rels[i], i % 4 + 1), verdicts)
        start = time.perf_counter()
        for _ in range(5):
            ann._records = None  # as after another reviewer's verdict
            ann.records()
            ann.class_counts()
        reads = (time.perf_counter() - start) / 5 * 1000
        start = time.perf_counter()
        ann.agreement()
        agreement = (time.perf_counter() - start) * 1000
    return {"verdict": verdict, "reads": reads, "agreement": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=int, default=300)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--postgres", action="store_true", help="also a team database")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        floor = _sqlite_floor(Path(folder), args.verdicts)
        got = _store(str(Path(folder) / "s.sqlite"), args.images, args.verdicts)
        rows.append(("SQLite file", floor, got))
    if args.postgres:
        from tests.pg_server import start_server, stop_server

        server = start_server()
        try:
            os.environ["PGPASSWORD"] = server.password
            floor = _pg_floor(server.url(server.create_database()), args.verdicts)
            got = _store(server.url(server.create_database()), args.images, args.verdicts)
            rows.append(("PostgreSQL (local, fsync off)", floor, got))
        finally:
            stop_server(server.base_dir, server.bin_dir)
    print(f"{args.images} images, 2 reviewers; medians of {args.verdicts} verdicts")
    print("| store | one verdict | bare driver commit | ratio | Summary reads | agreement |")
    print("|---|---|---|---|---|---|")
    for name, floor, got in rows:
        print(
            f"| {name} | {got['verdict']:.2f} ms | {floor:.2f} ms | "
            f"{got['verdict'] / floor:.1f}x | {got['reads']:.0f} ms | {got['agreement']:.0f} ms |"
        )


if __name__ == "__main__":
    main()
