"""Merging sessions reviewed on disconnected machines into one (a file or a team database).

Every row is matched by its key: an image by path, a verdict by (image, reviewer), a history
entry by its uid, an adjudication by image. What the target lacks is added; where both hold one,
the later one (by time) stays. So merging the same work twice changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, text

from engine.errors import InspectorError
from engine.session import Session, SessionContext, default_reviewer, sqlite_path


@dataclass
class MergeCounts:
    """What one merge changed in the target (all zero when it had everything already)."""

    images: int = 0
    verdicts: int = 0
    history: int = 0
    adjudications: int = 0
    views: int = 0
    # Same reviewer name, same image, different verdicts in two sources: the later was kept.
    conflicts: list[str] = field(default_factory=list)
    # A source made with other weights, layer or method than the target began with.
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.images + self.verdicts + self.history + self.adjudications + self.views

    def describe(self) -> str:
        return (
            f"{self.images} images, {self.verdicts} verdicts, {self.adjudications} "
            f"adjudications, {self.views} views and {self.history} history entries added or "
            "updated"
        )


def merge(
    sources: Sequence[str | Path], into: str | Path, password: str | None = None
) -> MergeCounts:
    """Merge every source session into `into`, creating it (with the first source's model
    and labels) when it does not exist; sources are only read."""
    if not sources:
        raise InspectorError("name at least one session to merge")
    _refuse_self(sources, into)
    worker = f"{default_reviewer()} (merge)"
    counts = MergeCounts()
    seen: dict[tuple[str, str], tuple[str, object]] = {}
    for source in sources:
        with Session.open_existing(source, reviewer=worker, read_only=True) as read:
            tables = {name: read.table(name) for name in _TABLES}
            context, labels = _context(tables["meta"]), json.loads(_meta(tables)["labels"])
        with Session.open(into, context, reviewer=worker, password=password) as t:
            # What the target holds counts too: a verdict it has (from an earlier merge or a
            # reviewer on the team database) that a source contradicts is a conflict as well.
            _note_conflicts(t.location, t.table("verdicts"), seen, counts, first=True)
            _note_conflicts(str(source), tables["verdicts"], seen, counts)
            if t.progress()[1] == 0 and not t.adjudications():  # a new, empty target
                t.set_labels(labels)
            counts.warnings += [w for w in t.warnings if not w.startswith(_PER_MACHINE)]
            if tuple(labels) != t.labels:
                raise InspectorError(
                    f"'{source}' has other verdict labels than '{t.location}' "
                    f"({labels} vs {list(t.labels)}): its codes mean other things; not merged"
                )
            with t.transaction() as conn:
                _merge_tables(conn, tables, counts)
    return counts


# Each machine has its own copy of the images: their folders differ and say nothing.
_PER_MACHINE = ("folder changed", "profile path changed")
_TABLES = ("meta", "images", "verdicts", "history", "adjudications", "verdict_views")


def _meta(tables: dict[str, list[dict[str, object]]]) -> dict[str, str]:
    return {str(row["key"]): str(row["value"]) for row in tables["meta"]}


def _context(meta_rows: list[dict[str, object]]) -> SessionContext:
    meta = {str(row["key"]): str(row["value"]) for row in meta_rows}
    return SessionContext(
        meta.get("folder", ""),
        meta.get("profile_path") or None,
        meta.get("weights_sha256", ""),
        meta.get("layer", ""),
        meta.get("method", ""),
    )


def _refuse_self(sources: Sequence[str | Path], into: str | Path) -> None:
    target = sqlite_path(into)
    if target is None or not target.exists():
        return
    for source in sources:
        path = sqlite_path(source)
        if path is not None and path.exists() and os.path.samefile(path, target):
            raise InspectorError(f"'{source}' is the target session itself; nothing to merge")


def _note_conflicts(
    source: str,
    verdicts: list[dict[str, object]],
    seen: dict[tuple[str, str], tuple[str, object]],
    counts: MergeCounts,
    first: bool = False,
) -> None:
    """Record where one reviewer judged one image differently in two places; first: rows
    that only fill in what was not seen yet (the target's own)."""
    for row in verdicts:
        key = (str(row["rel_path"]), str(row["reviewer"]))
        state = (row["code"], row["corrected"])
        if first:
            seen.setdefault(key, (source, state))
            continue
        if key in seen and seen[key][1] != state and seen[key][0] != source:
            counts.conflicts.append(
                f"'{key[1]}' judged '{key[0]}' differently in '{seen[key][0]}' and '{source}'"
            )
        seen[key] = (source, state)


def _merge_tables(
    conn: Connection, tables: dict[str, list[dict[str, object]]], counts: MergeCounts
) -> None:
    for row in tables["images"]:
        counts.images += conn.execute(_IMAGE, row).rowcount
    for row in tables["verdicts"]:
        counts.verdicts += conn.execute(_VERDICT, row).rowcount
    for row in tables["adjudications"]:
        counts.adjudications += conn.execute(_ADJUDICATION, row).rowcount
    for row in tables["verdict_views"]:
        counts.views += conn.execute(_VIEW, row).rowcount
    counts.history += _merge_history(conn, tables["history"])


def _merge_history(conn: Connection, entries: list[dict[str, object]]) -> int:
    """Entries the target lacks, in their order; `undoes` points at the target's own ids."""
    ids = {uid: id_ for uid, id_ in conn.execute(text("SELECT uid, id FROM history"))}
    by_source_id = {row["id"]: row["uid"] for row in entries}
    added = 0
    for row in sorted(entries, key=lambda r: int(r["id"])):  # type: ignore[arg-type]
        if row["uid"] in ids:
            continue
        values = {k: v for k, v in row.items() if k != "id"}
        undone = by_source_id.get(row["undoes"]) if row["undoes"] is not None else None
        values["undoes"] = ids.get(undone) if undone is not None else None
        new_id = conn.execute(_HISTORY, values).scalar_one()
        ids[row["uid"]] = new_id
        added += 1
    return added


# Images: fill what the target does not know yet (a prediction made on another machine).
_IMAGE = text(
    "INSERT INTO images (rel_path, ground_truth, predicted, confidence, pointing_hit,"
    " energy_in_box) VALUES (:rel_path, :ground_truth, :predicted, :confidence, :pointing_hit,"
    " :energy_in_box) ON CONFLICT (rel_path) DO UPDATE SET"
    " ground_truth = COALESCE(images.ground_truth, excluded.ground_truth),"
    " predicted = COALESCE(images.predicted, excluded.predicted),"
    " confidence = COALESCE(images.confidence, excluded.confidence),"
    " pointing_hit = COALESCE(images.pointing_hit, excluded.pointing_hit),"
    " energy_in_box = COALESCE(images.energy_in_box, excluded.energy_in_box)"
    " WHERE images.predicted IS NULL AND excluded.predicted IS NOT NULL"
)
# The later verdict of a reviewer on an image stays (times are ISO 8601 in UTC: text order).
_VERDICT = text(
    "INSERT INTO verdicts (rel_path, reviewer, code, corrected, note, time)"
    " VALUES (:rel_path, :reviewer, :code, :corrected, :note, :time)"
    " ON CONFLICT (rel_path, reviewer) DO UPDATE SET code = excluded.code,"
    " corrected = excluded.corrected, note = excluded.note, time = excluded.time"
    " WHERE excluded.time > verdicts.time"
)
_ADJUDICATION = text(
    "INSERT INTO adjudications (rel_path, code, corrected, note, lead, time)"
    " VALUES (:rel_path, :code, :corrected, :note, :lead, :time)"
    " ON CONFLICT (rel_path) DO UPDATE SET code = excluded.code, corrected = excluded.corrected,"
    " note = excluded.note, lead = excluded.lead, time = excluded.time"
    " WHERE excluded.time > adjudications.time"
)
_VIEW = text(
    "INSERT INTO verdict_views (rel_path, reviewer, layer, method, target, blur_sigma, time)"
    " VALUES (:rel_path, :reviewer, :layer, :method, :target, :blur_sigma, :time)"
    " ON CONFLICT (rel_path, reviewer) DO UPDATE SET layer = excluded.layer,"
    " method = excluded.method, target = excluded.target, blur_sigma = excluded.blur_sigma,"
    " time = excluded.time WHERE excluded.time > verdict_views.time"
)
_HISTORY = text(
    "INSERT INTO history (uid, rel_path, action, undoes, reviewer, time, old_code,"
    " old_corrected, old_note, new_code, new_corrected, new_note) VALUES (:uid, :rel_path,"
    " :action, :undoes, :reviewer, :time, :old_code, :old_corrected, :old_note, :new_code,"
    " :new_corrected, :new_note) RETURNING id"
)
