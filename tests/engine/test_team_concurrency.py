"""Four reviewers writing 500 verdicts each into one session at once, one of them SIGKILLed
midway: every verdict reported as recorded is there, once, under the right reviewer.

PostgreSQL takes the four at once. An SQLite file is one writer at a time (its lock refuses the
others), so there the four take turns: each retries its open until the file is free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.session import Session

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
VERDICTS = 500
KILL_AFTER = 150  # the killed writer's acknowledged verdicts before SIGKILL

CHILD = """
import sys, time
from engine.errors import InspectorError
from engine.session import Session, SessionContext

location, reviewer, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = SessionContext("/data/neu", None, "ab" * 32, "layer4", "gradcam")
while True:
    try:
        session = Session.open(location, context, reviewer=reviewer)
        break
    except InspectorError as exc:
        if "open in another window" not in str(exc):
            raise
        time.sleep(0.05)
for j in range(count):
    session.set_verdict(f"img{j:04d}.png", (j + len(reviewer)) % 4 + 1, note=f"{reviewer} {j}")
    print(j, flush=True)  # after the commit: this verdict is reported as recorded
session.close()
"""


def _writer(location: str, reviewer: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, location, reviewer, str(VERDICTS)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _acknowledged(child: subprocess.Popen[str], into: list[int], kill: bool) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        into.append(int(line))
        if kill and len(into) == KILL_AFTER:
            child.send_signal(signal.SIGKILL)  # most likely mid-way through the next verdict
            break


def _run(location: str) -> None:
    reviewers = [f"rev{i}" for i in range(WRITERS)]
    killed = reviewers[1]
    children = {name: _writer(location, name) for name in reviewers}
    acked: dict[str, list[int]] = {name: [] for name in reviewers}
    readers = [
        threading.Thread(target=_acknowledged, args=(children[n], acked[n], n == killed))
        for n in reviewers
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 600
    for reader in readers:
        reader.join(timeout=max(1.0, deadline - time.monotonic()))
    for name, child in children.items():
        child.wait(timeout=60)
        expected = -signal.SIGKILL if name == killed else 0
        assert child.returncode == expected, child.stderr.read() if child.stderr else ""
    assert len(acked[killed]) == KILL_AFTER
    assert all(acked[name] == list(range(VERDICTS)) for name in reviewers if name != killed)

    with Session.open_existing(location, reviewer="auditor", read_only=True) as session:
        everyone = session.all_verdicts()
        history = session.history()
    stored: dict[str, dict[str, tuple[int | None, str | None]]] = {n: {} for n in reviewers}
    for rel, by in everyone.items():
        for name, verdict in by.items():
            stored[name][rel] = (verdict.code, verdict.note)
    for name in reviewers:
        for j in acked[name]:  # every acknowledged verdict, with its own reviewer's values
            assert stored[name][f"img{j:04d}.png"] == ((j + len(name)) % 4 + 1, f"{name} {j}")
        extra = len(stored[name]) - len(acked[name])
        assert extra == 0 or (name == killed and extra == 1)  # at most the one being written
        entries = [h for h in history if h.reviewer == name]
        assert len(entries) == len(stored[name])  # one history entry per verdict: none twice
        assert {h.rel_path for h in entries} == set(stored[name])
        assert all(h.new[2] == f"{name} {int(h.rel_path[3:7])}" for h in entries)


@pytest.mark.parametrize("engine_name", ["postgresql", "sqlite"])
def test_four_writers_one_killed_lose_nothing_and_mix_nothing(
    engine_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if engine_name == "postgresql":
        location = request.getfixturevalue("pg_url")
    else:
        location = str(tmp_path / "team.sqlite")
    _run(location)
