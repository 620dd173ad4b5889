"""Session reports: report.csv and a self-contained report.html with figures drawn by OpenCV."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.class_average import ClassAverages, border_area, border_share, class_average_figure
from engine.errors import InspectorError
from engine.export import atomic_write_text, encode_png, ensure_output_dir
from engine.methods.registry import describe_method
from engine.session import ReviewedImage, Session, Verdict
from engine.summary import (
    NO_GROUND_TRUTH,
    NO_PREDICTION,
    confusion_table,
    localisation_table,
    verdict_counts,
    verdict_table,
)

CSV_COLUMNS = (
    "path",
    "ground_truth",
    "prediction",
    "confidence",
    "verdict",
    "corrected_class",
    "note",
    "pointing_hit",
    "energy_in_box",
    "reviewer",
    "time",
)
GALLERY_CODES = (2, 3, 4)
GALLERY_MAX_SIDE = 384
# RGB colours for codes 1..4, then "not reviewed".
CODE_COLOURS = ((46, 160, 67), (245, 166, 35), (214, 39, 40), (31, 119, 180), (200, 200, 200))
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK = (40, 40, 40)

OverlayFor = Callable[[str], np.ndarray | None]


@dataclass(frozen=True)
class ReportFiles:
    """Where write_report put its two files."""

    csv: Path
    html: Path


def write_report(
    session: Session, output_dir: str | Path, overlay_for: OverlayFor | None = None
) -> ReportFiles:
    """Write report.csv and report.html for the session into output_dir (created if missing)."""
    out = ensure_output_dir(Path(output_dir), None)
    records = session.records()
    files = ReportFiles(out / "report.csv", out / "report.html")
    atomic_write_text(files.csv, report_csv(records))
    atomic_write_text(files.html, report_html(session, records, overlay_for))
    return files


# --- CSV ------------------------------------------------------------------------------------


# A text cell starting with one of these is run as a formula by spreadsheet programs (OWASP
# "CSV injection"): a note like "=HYPERLINK(...)" must stay text when the report is opened.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _csv_row(record: ReviewedImage) -> list[str]:
    v = record.verdict
    values = (
        record.rel_path,
        record.ground_truth,
        record.predicted,
        record.confidence,
        v.code if v else None,
        v.corrected if v else None,
        v.note if v else None,
        record.pointing_hit,
        record.energy_in_box,
        v.reviewer if v else None,
        v.time if v else None,
    )
    return [_cell(value) for value in values]


def report_csv(records: Sequence[ReviewedImage]) -> str:
    """The CSV text: a header, then one row per image in path order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(record) for record in records)
    return buffer.getvalue()


# --- figures --------------------------------------------------------------------------------


def _ascii(text: str, limit: int = 22) -> str:
    """Hershey fonts draw ASCII only; the HTML tables beside each figure carry the exact names."""
    cleaned = text.encode("ascii", "replace").decode("ascii") or "(none)"
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 2] + ".."


def _put(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.45) -> None:
    cv2.putText(image, text, (x, y), _FONT, scale, _INK, 1, cv2.LINE_AA)


def _canvas(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def verdict_figure(names: Sequence[str], counts: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Horizontal stacked bars: one row per class, segments per verdict code, then unreviewed.

    counts has shape (classes, 5): codes 1..4, then not reviewed.
    """
    left, bar_w, row_h = 190, 520, 28
    legend_h = 24 * 3
    image = _canvas(30 + row_h * len(names) + legend_h, left + bar_w + 60)
    widest = max(int(counts.sum(axis=1).max(initial=0)), 1)
    for row, (name, row_counts) in enumerate(zip(names, counts, strict=True)):
        y = 20 + row * row_h
        _put(image, _ascii(name), 8, y + 18)
        x = left
        for colour, count in zip(CODE_COLOURS, row_counts, strict=True):
            width = int(bar_w * count / widest + 0.5)
            if width > 0:
                cv2.rectangle(image, (x, y + 4), (x + width - 1, y + row_h - 4), colour, -1)
            x += width
        _put(image, str(int(row_counts.sum())), x + 6, y + 18)
    y = 30 + row_h * len(names)
    legend = [f"{code} {_ascii(label, 38)}" for code, label in enumerate(labels, 1)]
    for i, text in enumerate([*legend, "not reviewed"]):
        x, ly = 8 + (i % 2) * 370, y + (i // 2) * 22
        cv2.rectangle(image, (x, ly), (x + 14, ly + 14), CODE_COLOURS[i], -1)
        _put(image, text, x + 20, ly + 12)
    return image


def _vertical_labels(names: Sequence[str], cell: int, height: int) -> np.ndarray:
    """Column labels drawn along a strip, then turned to read bottom-up."""
    strip = _canvas(cell * len(names), height)
    for i, name in enumerate(names):
        _put(strip, _ascii(name, 18), 4, i * cell + cell // 2 + 5)
    return cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)


def confusion_figure(names: Sequence[str], matrix: np.ndarray) -> np.ndarray:
    """Counts of ground truth (rows) against prediction (columns), darker for more images."""
    left, top, cell = 170, 150, 44
    n = len(names)
    image = _canvas(top + cell * n + 40, left + cell * n + 20)
    image[0:top, left : left + cell * n] = _vertical_labels(names, cell, top)
    peak = max(int(matrix.max(initial=0)), 1)
    for r in range(n):
        _put(image, _ascii(names[r]), 8, top + r * cell + cell // 2 + 5)
        for c in range(n):
            shade = matrix[r, c] / peak
            colour = tuple(int(255 - shade * (255 - v)) for v in (31, 119, 180))
            x, y = left + c * cell, top + r * cell
            cv2.rectangle(image, (x, y), (x + cell, y + cell), colour, -1)
            cv2.rectangle(image, (x, y), (x + cell, y + cell), (220, 220, 220), 1)
            ink = (255, 255, 255) if shade > 0.55 else _INK
            text = str(int(matrix[r, c]))
            cv2.putText(image, text, (x + 8, y + cell // 2 + 5), _FONT, 0.45, ink, 1, cv2.LINE_AA)
    _put(image, "rows: ground truth   columns: prediction", 8, top + cell * n + 26)
    return image


def localisation_figure(
    names: Sequence[str], pointing: Sequence[float | None], energy: Sequence[float | None]
) -> np.ndarray:
    """Two bars per class on a 0..1 scale: pointing-game hit rate and mean energy in box."""
    left, bar_w, row_h = 190, 480, 40
    image = _canvas(30 + row_h * len(names) + 30, left + bar_w + 70)
    for row, name in enumerate(names):
        y = 20 + row * row_h
        _put(image, _ascii(name), 8, y + 22)
        for k, (value, colour) in enumerate(
            ((pointing[row], (31, 119, 180)), (energy[row], (245, 166, 35)))
        ):
            top = y + 4 + k * 16
            if value is None:
                _put(image, "n/a", left, top + 12, 0.4)
                continue
            cv2.rectangle(image, (left, top), (left + int(bar_w * value), top + 12), colour, -1)
            _put(image, f"{value:.2f}", left + int(bar_w * value) + 6, top + 11, 0.4)
    y = 30 + row_h * len(names)
    for i, (text, colour) in enumerate(
        (("pointing game hit rate", (31, 119, 180)), ("energy in box", (245, 166, 35)))
    ):
        cv2.rectangle(image, (8 + i * 260, y), (22 + i * 260, y + 14), colour, -1)
        _put(image, text, 28 + i * 260, y + 12)
    return image


# --- HTML -----------------------------------------------------------------------------------


def png_data_uri(image: np.ndarray) -> str:
    """An RGB or gray uint8 image as a data: URI, so the HTML needs no other file."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(title: str, image: np.ndarray, table: str) -> str:
    return (
        f"<section><h2>{_e(title)}</h2>"
        f'<img class="figure" alt="{_e(title)}" src="{png_data_uri(image)}">{table}</section>'
    )


def _verdict_section(records: Sequence[ReviewedImage], labels: Sequence[str]) -> str:
    rows = verdict_table(records)
    if not rows:
        return "<section><h2>Verdicts per class</h2><p>No images in this session.</p></section>"
    names = [row.cls or NO_PREDICTION for row in rows]
    counts = verdict_counts(rows)
    header = ["predicted class", *(f"{i} {label}" for i, label in enumerate(labels, 1))]
    shown = [[name, *row] for name, row in zip(names, counts.tolist(), strict=True)]
    table = _table([*header, "not reviewed"], shown)
    return _figure("Verdicts per class", verdict_figure(names, counts, labels), table)


def _confusion_section(records: Sequence[ReviewedImage]) -> str:
    confusion = confusion_table(records)
    names = confusion.classes
    if not names:
        return ""
    rows = [[name, *row] for name, row in zip(names, confusion.counts.tolist(), strict=True)]
    table = _table(["ground truth \\ prediction", *names], rows)
    return _figure("Prediction vs ground truth", confusion_figure(names, confusion.counts), table)


def _localisation_section(records: Sequence[ReviewedImage]) -> str:
    scores = localisation_table(records)
    if not scores.classes:
        return ""
    names = [name or NO_GROUND_TRUTH for name in scores.classes]
    shown = [
        [n, _fmt(p), _fmt(e)] for n, p, e in zip(names, scores.pointing, scores.energy, strict=True)
    ]
    table = _table(["ground-truth class", "pointing game hit rate", "mean energy in box"], shown)
    figure = localisation_figure(names, scores.pointing, scores.energy)
    return _figure("Localisation per class", figure, table)


def class_trust_section(
    averages: ClassAverages,
    means: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    colormap: str = "jet",
) -> str:
    """Where the model looks per class (class-average maps, heat on the border against the
    border's area) and the faithfulness metrics' means per ground-truth class."""
    figure = class_average_figure(averages, colormap)
    if figure is None:
        return ""
    area = border_area(averages.size)
    rows = [
        [kind, name, averages.counts[(kind, name)], _fmt(border_share(mean)), _fmt(area)]
        for (kind, name), mean in averages.means().items()
    ]
    header = ["by", "class", "images", "heat on the border", "border's share of the area"]
    text = _figure("Where the model looks, per class", figure, _table(header, rows))
    shown = [m for m in metrics if any(m in found for found in means.values())]
    if shown:
        body = [
            [cls or NO_GROUND_TRUTH, *(_fmt(found.get(m)) for m in shown)]
            for cls, found in means.items()
        ]
        table = _table(["ground-truth class", *shown], body)
        text += f"<section><h2>Faithfulness per class (means)</h2>{table}</section>"
    return text


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _thumbnail(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = GALLERY_MAX_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _overlay_html(rel_path: str, overlay_for: OverlayFor | None) -> str:
    try:
        overlay = overlay_for(rel_path) if overlay_for else None
        if overlay is None:
            return '<p class="missing">no overlay</p>'
        return f'<img alt="{_e(rel_path)}" src="{png_data_uri(_thumbnail(np.asarray(overlay)))}">'
    except InspectorError as exc:
        return f'<p class="missing">overlay unavailable: {_e(exc)}</p>'


def _gallery_card(
    record: ReviewedImage, v: Verdict, labels: Sequence[str], overlay_for: OverlayFor | None
) -> str:
    facts = [
        f"verdict {v.code}: {labels[(v.code or 4) - 1]}",
        f"prediction: {record.predicted or '?'}"
        + (f" ({record.confidence:.1%})" if record.confidence is not None else ""),
        f"ground truth: {record.ground_truth or 'unknown'}",
    ]
    if v.corrected:
        facts.append(f"corrected class: {v.corrected}")
    facts.append(f"{v.reviewer}, {v.time}")
    note = f'<p class="note">{_e(v.note)}</p>' if v.note else ""
    items = "".join(f"<li>{_e(f)}</li>" for f in facts)
    return (
        f'<div class="card verdict{v.code}"><h3>{_e(record.rel_path)}</h3>'
        f"{_overlay_html(record.rel_path, overlay_for)}<ul>{items}</ul>{note}</div>"
    )


def _gallery(
    records: Sequence[ReviewedImage], labels: Sequence[str], overlay_for: OverlayFor | None
) -> str:
    marked = [r for r in records if r.verdict and r.verdict.code in GALLERY_CODES]
    if not marked:
        return "<section><h2>Images to look at</h2><p>No image was marked 2, 3 or 4.</p></section>"
    cards = "".join(
        _gallery_card(r, r.verdict, labels, overlay_for)  # type: ignore[arg-type]
        for r in marked
    )
    title = f"Images to look at ({len(marked)})"
    return f'<section><h2>{title}</h2><div class="gallery">{cards}</div></section>'


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px}
img.figure{display:block;max-width:100%;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ccc;border-left:6px solid #999;padding:8px;width:400px}
.card img{max-width:384px}.verdict2{border-left-color:#f5a623}.verdict3{border-left-color:#d62728}
.verdict4{border-left-color:#1f77b4}.note{white-space:pre-wrap;background:#f6f6f6;padding:6px}
.missing{color:#888}
"""


def report_html(
    session: Session, records: Sequence[ReviewedImage], overlay_for: OverlayFor | None = None
) -> str:
    """The whole report as one HTML document; every image is embedded as a data: URI."""
    info = session.info()
    reviewed, total = session.progress()
    facts = [
        ("folder", info.folder),
        ("profile", info.profile_path or "(none)"),
        ("weights sha256", info.weights_sha256),
        ("layer", info.layer),
        ("method", describe_method(info.method)),
        ("engine version", info.engine_version),
        ("started", info.created),
        ("last change", info.updated),
        ("reviewed", f"{reviewed} of {total}"),
    ]
    summary = _table(["", ""], facts)
    body = "".join(
        (
            f"<h1>Inspection report: {_e(Path(info.folder).name)}</h1>",
            summary,
            _verdict_section(records, info.labels),
            _confusion_section(records),
            _localisation_section(records),
            _gallery(records, info.labels, overlay_for),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Inspection report: {_e(Path(info.folder).name)}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )
