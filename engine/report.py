"""Session reports: report.csv and a self-contained, printable report.html (OpenCV figures)."""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from engine.class_average import ClassAverages, border_area, border_share, class_average_figure
from engine.csv_cells import csv_text
from engine.errors import InspectorError
from engine.export import atomic_write_text, encode_png, ensure_output_dir
from engine.methods.registry import describe_method
from engine.session import ReviewedImage, Session, SessionInfo, Verdict, VerdictView
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
CONFUSION_MAX_CLASSES = 30  # a 30-class figure is ~1500 px square
# Cards beyond this are listed in report.csv only: 200 JPEG thumbnails keep the page a few MB
# and a browser's print preview quick.
GALLERY_LIMIT = 200
JPEG_QUALITY = 85
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


@dataclass(frozen=True)
class ReportData:
    """What a report shows of a session, read at once: it may be written on another thread."""

    info: SessionInfo
    records: tuple[ReviewedImage, ...]
    views: Mapping[str, VerdictView]
    reviewed: int
    total: int

    @classmethod
    def read(cls, session: Session) -> ReportData:
        reviewed, total = session.progress()
        records = tuple(session.records())
        return cls(session.info(), records, session.verdict_views(), reviewed, total)

    def view(self, rel_path: str) -> tuple[VerdictView, bool]:
        """The map a verdict was given on, and whether it was recorded with the verdict (an
        older session's was not: then the layer and method the session began with)."""
        recorded = self.views.get(rel_path)
        if recorded is not None:
            return recorded, True
        return VerdictView(self.info.layer, self.info.method), False

    def gallery(self) -> list[ReviewedImage]:
        """The images marked 2, 3 or 4, in path order."""
        return [r for r in self.records if r.verdict and r.verdict.code in GALLERY_CODES]

    def shown(self) -> list[ReviewedImage]:
        """The gallery's cards: the first GALLERY_LIMIT images marked 2, 3 or 4."""
        return self.gallery()[:GALLERY_LIMIT]


@dataclass(frozen=True)
class ReportModel:
    """The model that drew the gallery's overlays, as the header and sign-off name it."""

    overlay_for: OverlayFor | None = None
    name: str = ""  # the profile's name; "" when no model was loaded
    weights_sha256: str = ""  # the loaded weights'; compared with the session's
    notices: tuple[str, ...] = ()  # shown at the top: weights differ, no profile, no images


def write_report(
    source: Session | ReportData,
    output_dir: str | Path,
    overlay_for: OverlayFor | None = None,
    model: ReportModel | None = None,
    generated: str = "",
) -> ReportFiles:
    """Write report.csv and report.html for the session into output_dir (created if missing).

    ``overlay_for`` alone draws overlays without naming a model; ``model`` replaces it.
    """
    data = source if isinstance(source, ReportData) else ReportData.read(source)
    drawn = model if model is not None else ReportModel(overlay_for)
    out = ensure_output_dir(Path(output_dir), None)
    files = ReportFiles(out / "report.csv", out / "report.html")
    atomic_write_text(files.csv, report_csv(data.records))
    atomic_write_text(files.html, report_html(data, drawn, generated))
    return files


# --- CSV ------------------------------------------------------------------------------------


def _cell(value: object) -> object:
    """Floats with 4 decimals; everything else as engine.csv_cells writes it."""
    return f"{value:.4f}" if isinstance(value, float) else value


def _csv_row(record: ReviewedImage) -> list[object]:
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
    """The CSV text: a header, then one row per image in path order (engine.csv_cells)."""
    return csv_text(CSV_COLUMNS, (_csv_row(record) for record in records))


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


def jpeg_data_uri(image: np.ndarray) -> str:
    """An RGB or gray uint8 image as a JPEG data: URI: an overlay is ~5x smaller than as PNG."""
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise InspectorError(f"cannot encode a {image.shape} image as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; a header of empty cells (a key/value table) draws no header row."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    head_row = f"<tr>{head}</tr>" if any(header) else ""
    return f"<table>{head_row}{body}</table>"


def _figure(title: str, image: np.ndarray, table: str) -> str:
    return (
        f"<section><h2>{_e(title)}</h2>"
        f'<p><img class="figure" alt="{_e(title)}" src="{png_data_uri(image)}"></p>'
        f"{table}</section>"
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


def most_confused(
    names: Sequence[str], matrix: np.ndarray, limit: int = CONFUSION_MAX_CLASSES
) -> tuple[list[str], np.ndarray]:
    """The classes the figure shows: all when they are few, else the `limit` with the most
    images off the diagonal (then the most images), in their original order. A 1,000-class
    matrix drawn whole needed a 5.9 GB canvas."""
    if len(names) <= limit:
        return list(names), matrix
    wrong = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * np.diag(matrix)
    total = matrix.sum(axis=0) + matrix.sum(axis=1)
    keep = sorted(np.lexsort((-total, -wrong))[:limit].tolist())
    return [names[i] for i in keep], matrix[np.ix_(keep, keep)]


def _confusion_section(records: Sequence[ReviewedImage]) -> str:
    confusion = confusion_table(records)
    if not confusion.classes:
        return ""
    names, counts = most_confused(confusion.classes, confusion.counts)
    rows = [[name, *row] for name, row in zip(names, counts.tolist(), strict=True)]
    table = _table(["ground truth \\ prediction", *names], rows)
    title = "Prediction vs ground truth"
    if len(names) < len(confusion.classes):
        title += f" ({len(names)} most confused of {len(confusion.classes)} classes)"
    return _figure(title, confusion_figure(names, counts), table)


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


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The image scaled down to fit GALLERY_MAX_SIDE pixels (never up)."""
    height, width = image.shape[:2]
    scale = GALLERY_MAX_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _overlay_html(rel_path: str, overlay_for: OverlayFor | None) -> str:
    """The card's overlay as a JPEG thumbnail, or a visible note saying why there is none."""
    try:
        overlay = overlay_for(rel_path) if overlay_for else None
    except InspectorError as exc:
        return f'<p class="missing">overlay unavailable: {_e(exc)}</p>'
    if overlay is None:
        return '<p class="missing">no overlay</p>'
    uri = jpeg_data_uri(thumbnail(np.asarray(overlay)))
    return f'<p class="overlay"><img alt="{_e(rel_path)}" src="{uri}"></p>'


def describe_view(view: VerdictView, recorded: bool) -> str:
    """The map a verdict was given on, in words: method, layer, class, blur."""
    target = "predicted class" if view.target == "pred" else f"class {view.target}"
    blur = f", blurred (sigma {view.blur_sigma:g} px)" if view.blur_sigma else ""
    text = f"map: {describe_method(view.method)} at {view.layer or '(default layer)'}, {target}"
    return text + blur + ("" if recorded else " (the session's; not recorded with this verdict)")


def _gallery_card(
    record: ReviewedImage, v: Verdict, data: ReportData, overlay_for: OverlayFor | None
) -> str:
    labels = data.info.labels
    facts = [
        f"verdict {v.code}: {labels[(v.code or 4) - 1]}",
        f"prediction: {record.predicted or '?'}"
        + (f" ({record.confidence:.1%})" if record.confidence is not None else ""),
        f"ground truth: {record.ground_truth or 'unknown'}",
    ]
    if v.corrected:
        facts.append(f"corrected class: {v.corrected}")
    facts.append(describe_view(*data.view(record.rel_path)))
    facts.append(f"{v.reviewer}, {v.time}")
    note = f'<p class="note">{_e(v.note)}</p>' if v.note else ""
    items = "".join(f"<li>{_e(f)}</li>" for f in facts)
    return (
        f'<div class="card verdict{v.code}"><h3>{_e(record.rel_path)}</h3>'
        f"{_overlay_html(record.rel_path, overlay_for)}<ul>{items}</ul>{note}</div>"
    )


def _gallery(data: ReportData, overlay_for: OverlayFor | None) -> str:
    marked = data.gallery()
    if not marked:
        return "<section><h2>Images to look at</h2><p>No image was marked 2, 3 or 4.</p></section>"
    shown = data.shown()
    cards = "".join(
        _gallery_card(r, r.verdict, data, overlay_for)  # type: ignore[arg-type]
        for r in shown
    )
    rest = len(marked) - len(shown)
    more = (
        f'<p class="more">The first {len(shown)} are shown; the other {rest} images marked '
        "2, 3 or 4 are listed in report.csv.</p>"
        if rest
        else ""
    )
    title = f"Images to look at ({len(marked)})"
    return f'<section><h2>{title}</h2>{more}<div class="gallery">{cards}</div></section>'


def _signoff(data: ReportData, model: ReportModel, generated: str) -> str:
    """Who reviewed, what model judged, and lines to sign: what is filed with the printout."""
    info = data.info
    counts = Counter(r.verdict.reviewer for r in data.records if r.verdict and r.verdict.code)
    reviewers = ", ".join(
        f"{name} ({n} verdict{'' if n == 1 else 's'})" for name, n in sorted(counts.items())
    )
    rows = [
        ("reviewers", reviewers or "(no verdicts)"),
        ("reviewed", f"{data.reviewed} of {data.total} images"),
        ("report date", generated),
        ("model", model.name or Path(info.profile_path).name or "(no profile)"),
        ("weights sha256", info.weights_sha256 or "(random initialisation)"),
    ]
    if model.weights_sha256 and model.weights_sha256 != info.weights_sha256:
        rows.append(("overlays drawn with weights", model.weights_sha256))
    lines = "".join(
        f'<div class="line"><span>{label}</span></div>'
        for label in ("Approved by (name)", "Date", "Signature")
    )
    return (
        f'<section class="signoff"><h2>Sign-off</h2>{_table(["", ""], rows)}'
        f'<div class="lines">{lines}</div></section>'
    )


def _css_string(text: str) -> str:
    """Text as a CSS string literal; every character but letters and digits is escaped, so a
    folder name cannot end the string or the <style> element."""
    inner = "".join(c if c.isascii() and c.isalnum() else f"\\{ord(c):x} " for c in text)
    return f'"{inner}"'


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px}
img.figure{display:block;max-width:100%;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ccc;border-left:6px solid #999;padding:8px;width:400px}
.card img{max-width:384px}.verdict2{border-left-color:#f5a623}.verdict3{border-left-color:#d62728}
.verdict4{border-left-color:#1f77b4}.note{white-space:pre-wrap;background:#f6f6f6;padding:6px}
.missing{color:#888}.notice{border:2px solid #d62728;background:#fdecea;padding:8px;margin:8px 0}
.signoff .lines{margin-top:32px}
.signoff .line{border-bottom:1px solid #222;height:40px;margin:0 0 18px;max-width:520px}
.signoff .line span{position:relative;top:44px;font-size:12px;color:#555}
"""

# Printing (Chrome, Firefox, Safari): the paper is the printer's (A4 or Letter: the layout is
# fluid and fits the narrower A4 width); the header and page numbers repeat in the page
# margins; each section starts a page; a card is never split over two pages.
_PRINT_CSS = """
@page{margin:18mm 12mm 16mm;@top-left{content:{header};font:9pt system-ui,sans-serif;color:#555}
@bottom-right{content:"page " counter(page) " of " counter(pages);font:9pt system-ui,sans-serif}}
@media print{
body{margin:0;font-size:10pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
section{break-before:page;page-break-before:always}
h2,h3{break-after:avoid;page-break-after:avoid}
img.figure,table,.notice{break-inside:avoid;page-break-inside:avoid}
.gallery{gap:3mm}.card{width:calc(50% - 2mm);box-sizing:border-box;padding:2mm}
.card{break-inside:avoid;page-break-inside:avoid}.card img{max-width:100%}
}
"""


def report_html(data: ReportData, model: ReportModel | None = None, generated: str = "") -> str:
    """The whole report as one HTML document; every image is embedded as a data: URI.

    generated: the report's date and time (default: now, UTC).
    """
    drawn = model if model is not None else ReportModel()
    when = generated or datetime.now(UTC).isoformat(timespec="seconds")
    info = data.info
    title = f"Inspection report: {Path(info.folder).name}"
    facts = [
        ("folder", info.folder),
        ("profile", info.profile_path or "(none)"),
        ("weights sha256", info.weights_sha256),
        ("layer", info.layer),
        ("method", describe_method(info.method)),
        ("engine version", info.engine_version),
        ("started", info.created),
        ("last change", info.updated),
        ("reviewed", f"{data.reviewed} of {data.total}"),
    ]
    notices = "".join(f'<p class="notice">{_e(n)}</p>' for n in drawn.notices)
    body = "".join(
        (
            f"<h1>{_e(title)}</h1>",
            notices,
            _table(["", ""], facts),
            _verdict_section(data.records, info.labels),
            _confusion_section(data.records),
            _localisation_section(data.records),
            _gallery(data, drawn.overlay_for),
            _signoff(data, drawn, when),
        )
    )
    header = _css_string(f"{title} - weights {info.weights_sha256[:12] or 'none'}")
    css = _CSS + _PRINT_CSS.replace("{header}", header)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{css}</style></head><body>{body}</body></html>\n"
    )
