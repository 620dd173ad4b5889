"""What a session holds, as records: verdicts, adjudications, views, contexts, the dispute rule.

Torch-free and database-free (no SQLAlchemy): the window imports these at start; the store in
engine/session.py is imported only when a session opens.
"""

from __future__ import annotations

import getpass
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import engine
from engine.resources import user_data_dir

DEFAULT_LABELS = (
    "right class, heat on the defect",
    "right class, heat elsewhere",
    "wrong class",
    "unsure",
)
CODES = (1, 2, 3, 4)


@dataclass(frozen=True)
class Verdict:
    """A reviewer's review state of an image; code None means a note without a verdict."""

    rel_path: str
    code: int | None
    corrected: str | None
    note: str | None
    reviewer: str
    time: str


@dataclass(frozen=True)
class Adjudication:
    """A lead's final verdict on an image, which the report uses where it exists."""

    rel_path: str
    code: int
    corrected: str | None
    note: str | None
    lead: str
    time: str

    def as_verdict(self) -> Verdict:
        return Verdict(self.rel_path, self.code, self.corrected, self.note, self.lead, self.time)


@dataclass(frozen=True)
class VerdictView:
    """What the reviewer looked at when giving a verdict: the map to draw again in the report."""

    layer: str
    method: str
    target: str | int = "pred"  # "pred" or a class index, as the window's target
    blur_sigma: float = 0.0


@dataclass(frozen=True)
class HistoryEntry:
    """One change to an image's review state (who, when, old, new); undo adds an entry too."""

    id: int
    rel_path: str
    action: str
    undoes: int | None
    reviewer: str
    time: str
    old: tuple[int | None, str | None, str | None]
    new: tuple[int | None, str | None, str | None]


@dataclass(frozen=True)
class ReviewedImage:
    """An image's model result joined with its review state, as the report lists it.

    verdict is the final one: the adjudication where there is one, else the verdict every
    reviewer shares (with one reviewer, theirs), else None while reviewers disagree.
    """

    rel_path: str
    ground_truth: str | None
    predicted: str | None
    confidence: float | None
    pointing_hit: bool | None
    energy_in_box: float | None
    verdict: Verdict | None
    verdicts: tuple[Verdict, ...] = ()
    adjudication: Adjudication | None = None

    @property
    def disputed(self) -> bool:
        """Reviewers gave different verdicts (settled or not)."""
        return disputed(self.verdicts)


def disputed(verdicts: Iterable[Verdict]) -> bool:
    """Verdicts differ in code or in corrected class: the image's final verdict stays open
    until a lead adjudicates (the one rule for the report, the filter and records())."""
    return len({(v.code, v.corrected) for v in verdicts if v.code is not None}) > 1


@dataclass(frozen=True)
class ImageReview:
    """One image's review as this reviewer may come to see it, read at once."""

    own: Verdict | None
    others: tuple[Verdict, ...]  # every other reviewer's verdict, blind mode or not
    adjudication: Adjudication | None
    blind: bool
    reviewers: int  # everyone who reviewed in the session, this reviewer included

    @property
    def hidden(self) -> bool:
        """Blind mode hides the others until this reviewer has given a verdict."""
        return self.blind and (self.own is None or self.own.code is None)


@dataclass(frozen=True)
class SessionContext:
    """What the verdicts are made against: the image folder and the model that judges them."""

    folder: str | Path
    profile_path: str | Path | None
    weights_sha256: str
    layer: str
    method: str

    def meta(self) -> dict[str, str]:
        """As stored in the session's meta table: paths resolved, with the engine's version."""
        profile = self.profile_path
        return {
            "folder": str(Path(self.folder).expanduser().resolve()),
            "profile_path": str(Path(profile).expanduser().resolve()) if profile else "",
            "weights_sha256": self.weights_sha256,
            "layer": self.layer,
            "method": self.method,
            "engine_version": engine.__version__,
        }


@dataclass(frozen=True)
class SessionInfo:
    """What a session was started against, and its verdict labels."""

    path: Path | str  # the file, or a team session's URL (without a password)
    folder: str
    profile_path: str
    weights_sha256: str
    layer: str
    method: str
    engine_version: str
    created: str
    updated: str
    labels: tuple[str, str, str, str]
    reviewers: tuple[str, ...] = field(default=())


def default_session_path(folder: str | Path, profile_path: str | Path | None) -> Path:
    """One session file per (folder, profile) under the user's data dir, never the image folder."""
    folder_key = str(Path(folder).expanduser().resolve())
    profile_key = str(Path(profile_path).expanduser().resolve()) if profile_path else ""
    digest = hashlib.sha256(f"{folder_key}\0{profile_key}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(folder_key).name)[:40] or "root"
    return user_data_dir() / "sessions" / f"{slug}-{digest}.sqlite"


def default_reviewer() -> str:
    """The OS user: whom verdicts belong to until the reviewer sets a name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def is_team_location(location: object) -> bool:
    """Whether a session location names a PostgreSQL database rather than a file."""
    text = str(location)
    scheme = text.split(":", 1)[0].lower()
    return scheme.split("+", 1)[0] in ("postgresql", "postgres") and "://" in text
