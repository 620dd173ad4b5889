"""Session reports: report.csv and a self-contained, printable report.html (OpenCV figures)."""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from engine.agreement import AgreementReport, Kappa, agreement, describe
from engine.class_average import ClassAverages, border_area, border_share, class_average_figure
from engine.csv_cells import csv_text
from engine.errors import InspectorError
from engine.export import atomic_write_text, encode_png, ensure_output_dir
from engine.methods.registry import describe_method
from engine.session_records import ReviewedImage, SessionInfo, Verdict, VerdictView
from engine.summary import (
    NO_GROUND_TRUTH,
    NO_PREDICTION,
    confusion_table,
    localisation_table,
    verdict_counts,
    verdict_table,
)

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported when a session opens, not with the window
    from engine.session import Session

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
    "adjudicated_by",
    "adjudicated_at",
    "disputed",
)
# Then one column per reviewer who gave a verdict, in name order: their own code.
REVIEWER_COLUMN = "verdict:{}"
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
        """Everything from one read of the records, so the numbers agree with each other while
        other reviewers keep writing to a team session."""
        records = tuple(session.records())
        reviewed = sum(1 for r in records if r.verdict is not None and r.verdict.code is not None)
        return cls(session.info(), records, session.verdict_views(), reviewed, len(records))

    @cached_property
    def reviewers(self) -> tuple[str, ...]:
        """Everyone who gave a verdict on an image, in name order."""
        return reviewers_of(self.records)

    @cached_property
    def agreement(self) -> AgreementReport:
        """Cohen's and Fleiss' kappa over the reviewers' verdicts, per predicted class too."""
        codes = {
            r.rel_path: {v.reviewer: v.code for v in r.verdicts if v.code is not None}
            for r in self.records
        }
        classes = {r.rel_path: r.predicted or "" for r in self.records}
        return agreement({rel: c for rel, c in codes.items() if c}, classes)

    def disputes(self) -> list[ReviewedImage]:
        """The images whose reviewers gave different verdicts, settled or not."""
        return [r for r in self.records if r.disputed]

    def open_disputes(self) -> list[ReviewedImage]:
        """The disputed images no lead has settled: they have no final verdict yet."""
        return [r for r in self.disputes() if r.adjudication is None]

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


def reviewers_of(records: Sequence[ReviewedImage]) -> tuple[str, ...]:
    """Everyone who gave a verdict (not only a note) on one of the images, in name order."""
    return tuple(sorted({v.reviewer for r in records for v in r.verdicts if v.code is not None}))


def csv_columns(reviewers: Sequence[str]) -> tuple[str, ...]:
    """CSV_COLUMNS, then a verdict column for each reviewer."""
    return (*CSV_COLUMNS, *(REVIEWER_COLUMN.format(name) for name in reviewers))


def _csv_row(record: ReviewedImage, reviewers: Sequence[str]) -> list[object]:
    v, a = record.verdict, record.adjudication
    own = {w.reviewer: w.code for w in record.verdicts}
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
        a.lead if a else None,
        a.time if a else None,
        "yes" if record.disputed else "no",
        *(own.get(name) for name in reviewers),
    )
    return [_cell(value) for value in values]


def report_csv(records: Sequence[ReviewedImage]) -> str:
    """The CSV text: a header, then one row per image in path order (engine.csv_cells).

    verdict, reviewer and time are the final verdict's (a lead's adjudication, else the verdict
    every reviewer gave; empty while reviewers disagree); verdict:NAME is each reviewer's own.
    """
    reviewers = reviewers_of(records)
    rows = (_csv_row(record, reviewers) for record in records)
    return csv_text(csv_columns(reviewers), rows)


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


def _verdict_words(v: Verdict, labels: Sequence[str]) -> str:
    """A verdict as a card lists it: "3 wrong class (corrected class: crazing)"."""
    if v.code is None:
        return "a note, no verdict"
    corrected = f" (corrected class: {v.corrected})" if v.corrected else ""
    return f"{v.code} {labels[v.code - 1]}{corrected}"


def _who_said(record: ReviewedImage, v: Verdict, labels: Sequence[str]) -> tuple[list[str], str]:
    """Who gave the final verdict and when, and the notes, as a card shows them: with several
    reviewers or a lead, every reviewer's own verdict and note, then the adjudication."""
    settled = record.adjudication
    if len(record.verdicts) < 2 and settled is None:
        note = f'<p class="note">{_e(v.note)}</p>' if v.note else ""
        return [f"{v.reviewer}, {v.time}"], note
    facts = [f"{w.reviewer}: {_verdict_words(w, labels)}, {w.time}" for w in record.verdicts]
    said = [(w.reviewer, w.note) for w in record.verdicts]
    if settled is not None:
        facts.append(f"adjudicated by {settled.lead}, {settled.time}")
        said.append((f"{settled.lead} (adjudication)", settled.note))
    notes = "".join(f'<p class="note">{_e(who)}: {_e(note)}</p>' for who, note in said if note)
    return facts, notes


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
    who, notes = _who_said(record, v, labels)
    items = "".join(f"<li>{_e(f)}</li>" for f in (*facts, *who))
    return (
        f'<div class="card verdict{v.code}"><h3>{_e(record.rel_path)}</h3>'
        f"{_overlay_html(record.rel_path, overlay_for)}<ul>{items}</ul>{notes}</div>"
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _reviewed_text(data: ReportData, unit: str = "") -> str:
    """How many images have a final verdict, and how many wait for a lead."""
    waiting = len(data.open_disputes())
    text = f"{data.reviewed} of {data.total}{unit}"
    return text + (f", {_plural(waiting, 'open disagreement')}" if waiting else "")


def _signoff(data: ReportData, model: ReportModel, generated: str) -> str:
    """Who reviewed, what model judged, and lines to sign: what is filed with the printout."""
    info = data.info
    # Each reviewer's own verdicts; the leads' adjudications on a line of their own.
    counts = Counter(v.reviewer for r in data.records for v in r.verdicts if v.code is not None)
    leads = Counter(r.adjudication.lead for r in data.records if r.adjudication is not None)
    reviewers = ", ".join(f"{name} ({_plural(n, 'verdict')})" for name, n in sorted(counts.items()))
    rows = [("reviewers", reviewers or "(no verdicts)")]
    if leads:
        adjudicated = (f"{name} ({_plural(n, 'image')})" for name, n in sorted(leads.items()))
        rows.append(("adjudicated by", ", ".join(adjudicated)))
    rows += [
        ("reviewed", _reviewed_text(data, " images")),
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


# --- reviewers and agreement ------------------------------------------------------------------

KAPPA_HEADER = ("reviewers", "images", "observed agreement", "chance agreement", "kappa")


def _kappa_row(who: str, k: Kappa) -> list[object]:
    """A kappa with the counts behind it; the kappa cell is engine.agreement.describe's text."""
    return [who, k.n, _fmt(k.observed), _fmt(k.expected), describe(k)]


def _kappa_rows(report: AgreementReport) -> list[tuple[str, Kappa, dict[str, Kappa]]]:
    """Each pair's Cohen's kappa, then Fleiss' kappa of all reviewers, overall and per class."""
    rows = [(f"{p.a} and {p.b}", p.overall, p.per_class) for p in report.pairs]
    everyone = f"all {len(report.reviewers)} (Fleiss)"
    return [*rows, (everyone, report.fleiss, report.fleiss_per_class)]


def _open_table(data: ReportData) -> str:
    """The disagreements no lead has settled yet, with each reviewer's verdict."""
    waiting = data.open_disputes()
    if not waiting:
        return ""
    shown = waiting[:GALLERY_LIMIT]
    rows = []
    for record in shown:
        own = {v.reviewer: v for v in record.verdicts if v.code is not None}
        cells = [_code_text(own[name]) if name in own else "" for name in data.reviewers]
        rows.append([record.rel_path, record.predicted or NO_PREDICTION, *cells])
    more = len(waiting) - len(shown)
    rest = (
        f'<p class="more">The first {len(shown)} are listed; the other {more} are in '
        "report.csv (disputed yes, verdict empty).</p>"
        if more
        else ""
    )
    table = _table(["image", "prediction", *data.reviewers], rows)
    return f"<h3>Open disagreements ({len(waiting)})</h3>{rest}{table}"


def _code_text(v: Verdict) -> str:
    return f"{v.code}" + (f" (corrected class: {v.corrected})" if v.corrected else "")


def _agreement_section(data: ReportData) -> str:
    """How far the reviewers agree and what the leads settled; nothing with one reviewer and no
    adjudication, so a one-person session's report is as it always was."""
    reviewers = data.reviewers
    settled = sum(1 for r in data.records if r.adjudication is not None)
    if len(reviewers) < 2 and not settled:
        return ""
    disputes = data.disputes()
    waiting = len(data.open_disputes())
    counts = [
        ("reviewers", ", ".join(reviewers) or "(no verdicts)"),
        ("disputed images", len(disputes)),
        ("settled by adjudication", len(disputes) - waiting),
        ("still open", waiting),
        ("adjudicated images (disputed or not)", settled),
    ]
    text = f"<section><h2>Reviewers and agreement</h2>{_table(['', ''], counts)}"
    if len(reviewers) < 2:
        return (
            text
            + "<p>One reviewer: no agreement to measure.</p>"
            + _open_table(data)
            + "</section>"
        )
    rows = _kappa_rows(data.agreement)
    overall = _table(KAPPA_HEADER, [_kappa_row(who, k) for who, k, _ in rows])
    per_class = _table(
        ["predicted class", *KAPPA_HEADER],
        [
            [cls or NO_PREDICTION, *_kappa_row(who, by_class[cls])]
            for cls in data.agreement.fleiss_per_class
            for who, _, by_class in rows
        ],
    )
    about = (
        "<p>Cohen&#x27;s kappa for each pair of reviewers on the images both reviewed; "
        "Fleiss&#x27; kappa for all reviewers on the images every one of them reviewed. "
        "Observed: the share of agreeing verdicts; chance: the share expected from how often "
        "each verdict was given.</p>"
    )
    return (
        f"{text}{about}<h3>Overall</h3>{overall}<h3>Per predicted class</h3>{per_class}"
        f"{_open_table(data)}</section>"
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
        ("session", info.path),  # a team session's URL never holds the password
        ("profile", info.profile_path or "(none)"),
        ("weights sha256", info.weights_sha256),
        ("layer", info.layer),
        ("method", describe_method(info.method)),
        ("engine version", info.engine_version),
        ("started", info.created),
        ("last change", info.updated),
        ("reviewed", _reviewed_text(data)),
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
            _agreement_section(data),
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
