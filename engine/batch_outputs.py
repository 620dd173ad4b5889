"""A batch's output folder: names that cannot collide, room kept for every row, resumed rows."""

from __future__ import annotations

import csv
import errno
import os
import unicodedata
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from engine.csv_cells import cell_text
from engine.dataset import ImageRecord
from engine.errors import InspectorError

RESERVE_NAME = ".gradcam-inspector.reserve"
# Room kept for each image's row in case the disk fills: an error row is path + a few words.
_RESERVE_PER_ROW = 512
_RESERVE_MAX = 64 * 1024**2
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _name_key(path: Path) -> str:
    """What a case-insensitive, normalising file system (macOS, Windows) sees of a name."""
    return unicodedata.normalize("NFC", path.as_posix()).casefold()


def output_stems(records: Sequence[ImageRecord], output: Path) -> list[Path]:
    """Output path prefix per image, mirroring sub-folders, unique even where case is ignored.

    'a.png' and 'a.jpg' become 'a_png' and 'a_jpg'; a name still taken (x.png and x.PNG, or a
    'a_png.bmp' beside them) gets '_2', '_3'... Each image's files are the prefix plus a
    suffix of their own, so distinct prefixes never share a file.
    """
    stems = [record.rel_path.with_suffix("") for record in records]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[_name_key(stem)] = counts.get(_name_key(stem), 0) + 1
    used: set[str] = set()
    unique = []
    for record, stem in zip(records, stems, strict=True):
        if counts[_name_key(stem)] > 1:
            stem = stem.with_name(f"{stem.name}_{record.rel_path.suffix.lstrip('.').lower()}")
        candidate, number = stem, 2
        while _name_key(candidate) in used:
            candidate, number = stem.with_name(f"{stem.name}_{number}"), number + 1
        used.add(_name_key(candidate))
        unique.append(output / candidate)
    return unique


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (or the OSError behind an InspectorError) means no space is left."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    return isinstance(cause, OSError) and cause.errno in _DISK_FULL_ERRNOS


class RowReserve:
    """Disk space set aside in the output folder, freed when the disk fills so that every
    remaining image still gets its 'disk full' row in results.csv."""

    def __init__(self, folder: Path, rows: int) -> None:
        self.path = folder / RESERVE_NAME
        size = min(_RESERVE_MAX, (rows + 8) * _RESERVE_PER_ROW)
        try:
            with self.path.open("wb") as handle:
                _allocate(handle.fileno(), size)
        except OSError as exc:
            self.release()
            reason = "the disk is full" if is_disk_full(exc) else exc.strerror or str(exc)
            raise InspectorError(
                f"cannot start a batch in '{folder}': {reason} (results.csv needs "
                f"{size // 1024} KB); free some space or choose another output folder"
            ) from exc

    def release(self) -> None:
        with suppress(OSError):
            self.path.unlink(missing_ok=True)


def _allocate(fd: int, size: int) -> None:
    # Real blocks, not a sparse file: a hole frees nothing when it is deleted.
    if hasattr(os, "posix_fallocate"):
        with suppress(OSError):
            os.posix_fallocate(fd, 0, size)
            return
    block = b"\0" * (1024 * 1024)
    for start in range(0, size, len(block)):
        os.write(fd, block[: size - start])
    os.fsync(fd)


def finished_rows(
    csv_path: Path,
    records: Sequence[ImageRecord],
    columns: Sequence[str] = (),
    same: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """The 'ok' rows an earlier run left for these images, by path (for --resume).

    Reads results.csv and, after a run stopped while replacing it, results.csv.partial (its
    rows are newer). An unreadable file counts as no rows: those images are made again. A row
    without one of ``columns`` (an earlier run without that metric) or whose cells differ from
    ``same`` (another method or layer) is not kept either: its image is made again.
    """
    wanted = {record.rel_path.as_posix() for record in records}
    same = same or {}
    rows: dict[str, dict[str, str]] = {}
    for path in (csv_path, csv_path.with_name(csv_path.name + ".partial")):
        with (
            suppress(OSError, csv.Error, UnicodeDecodeError),
            path.open(newline="", encoding="utf-8") as handle,
        ):
            for row in csv.DictReader(handle):
                key = cell_text(row.get("path") or "")
                if key not in wanted or row.get("status") != "ok":
                    continue
                if any(row.get(name) is None for name in columns) or any(
                    cell_text(row.get(name) or "") != value for name, value in same.items()
                ):
                    rows.pop(key, None)  # a newer row for it says the older one is stale
                    continue
                rows[key] = row
    return rows
