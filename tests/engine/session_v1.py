"""A session file exactly as version 0.1 wrote it (schema 1), for the upgrade tests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

# Copied from engine/session.py at version 0.1 (commit fed9a75): the upgrade must read this.
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    rel_path TEXT PRIMARY KEY,
    ground_truth TEXT,
    predicted TEXT,
    confidence REAL,
    pointing_hit INTEGER,
    energy_in_box REAL
);
CREATE TABLE verdicts (
    rel_path TEXT PRIMARY KEY REFERENCES images(rel_path),
    code INTEGER CHECK (code IS NULL OR code BETWEEN 1 AND 4),
    corrected TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rel_path TEXT NOT NULL REFERENCES images(rel_path),
    action TEXT NOT NULL CHECK (action IN ('verdict', 'note', 'undo')),
    undoes INTEGER REFERENCES history(id),
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL,
    old_code INTEGER, old_corrected TEXT, old_note TEXT,
    new_code INTEGER, new_corrected TEXT, new_note TEXT
);
"""
_VIEWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdict_views (
    rel_path TEXT PRIMARY KEY REFERENCES images(rel_path),
    layer TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    blur_sigma REAL NOT NULL,
    time TEXT NOT NULL
)
"""


def write_v1_session(path: Path, with_views: bool = True) -> None:
    """Two images, ann's verdicts on both (one changed, with a note), an undo and one view."""
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA + (_VIEWS_SCHEMA + ";" if with_views else ""))
    conn.execute("PRAGMA application_id=0x47434931")
    conn.execute("PRAGMA user_version=1")
    meta = {
        "folder": "/data/neu",
        "profile_path": "",
        "weights_sha256": "ab" * 32,
        "layer": "features",
        "method": "gradcam",
        "engine_version": "0.1.0",
        "created": "2026-11-01T10:00:00.000+00:00",
        "updated": "2026-11-01T10:05:00.000+00:00",
        "labels": json.dumps(["good", "elsewhere", "wrong", "unsure"]),
    }
    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    conn.execute("INSERT INTO images VALUES ('a.png', 'crazing', 'crazing', 0.9, 1, 0.6)")
    conn.execute("INSERT INTO images VALUES ('b.png', 'patches', 'crazing', 0.4, 0, 0.1)")
    conn.execute("INSERT INTO images VALUES ('c.png', NULL, NULL, NULL, NULL, NULL)")
    t = "2026-11-01T10:0{}:00.000+00:00".format
    history = [
        (1, "a.png", "verdict", None, "ann", t(1), None, None, None, 2, None, None),
        (2, "a.png", "verdict", None, "ann", t(2), 2, None, None, 1, None, "on the crack"),
        (3, "b.png", "verdict", None, "ann", t(3), None, None, None, 4, None, None),
        (4, "b.png", "undo", 3, "ann", t(4), 4, None, None, None, None, None),
        (5, "b.png", "verdict", None, "ann", t(5), None, None, None, 3, "patches", None),
    ]
    conn.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", history)
    conn.execute(
        "INSERT INTO verdicts VALUES ('a.png', 1, NULL, 'on the crack', 'ann', ?)", (t(2),)
    )
    conn.execute("INSERT INTO verdicts VALUES ('b.png', 3, 'patches', NULL, 'ann', ?)", (t(5),))
    if with_views:
        conn.execute(
            "INSERT INTO verdict_views VALUES ('a.png', 'layer3', 'gradcam', 'pred', 1.5, ?)",
            (t(2),),
        )
    conn.commit()
    conn.close()
