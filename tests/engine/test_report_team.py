"""A team session's report: final verdicts, reviewer columns, the agreement section, team URLs."""

from __future__ import annotations

import getpass
import html
import re
import subprocess
from pathlib import Path

import pytest

from engine.agreement import describe
from engine.cli import run
from engine.report import CSV_COLUMNS, ReportData, report_html, write_report
from engine.session import Session, SessionContext
from tests.conftest import csv_rows
from tests.engine.test_report import CHROMIUM, headless_chromium
from tests.pg_server import PgServer

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")
RESULTS = {  # rel_path: predicted class
    "a.png": "crazing",
    "b.png": "patches",
    "c.png": "crazing",
    "d.png": "patches",
    "e.png": "crazing",
    "f.png": "patches",
}
# a: both 1; b: 3 against 2, settled 3 by the lead; c: both 2; d: 4 against 1, open; e: ann's only.
ANN = {"a.png": 1, "b.png": 3, "c.png": 2, "d.png": 4, "e.png": 1}
BOB = {"a.png": 1, "b.png": 2, "c.png": 2, "d.png": 1}
LEAD_SETTLES = {"b.png": 3}


def _context(folder: Path) -> SessionContext:
    return SessionContext(folder, None, "ab" * 32, "features", "gradcam")


def _review(
    location: str | Path,
    folder: Path,
    names: tuple[str, str, str] = ("ann", "bob", "lea"),
    note: str | None = None,
) -> None:
    """The first reviewer starts the session; each reviewer then gives verdicts in a sitting
    of their own, and the lead settles b.png."""
    first, second, lead = names
    with Session.open(location, _context(folder), first) as session:
        for rel, predicted in RESULTS.items():
            session.record_result(rel, predicted, 0.9, predicted)
        for rel, code in ANN.items():
            session.set_verdict(rel, code, note=note if rel == "b.png" else None)
    with Session.open_existing(location, second) as session:
        for rel, code in BOB.items():
            session.set_verdict(rel, code)
    with Session.open_existing(location, lead) as session:
        for rel, code in LEAD_SETTLES.items():
            session.adjudicate(rel, code, note="the scratch is the defect")


@pytest.fixture
def team(tmp_path: Path) -> Path:
    path = tmp_path / "team.sqlite"
    _review(path, tmp_path / "images")
    return path


def _row_cells(text: str, first: str) -> list[list[str]]:
    """The cells of every table row of text whose first cell is `first` (HTML-escaped text)."""
    rows = re.findall(r"<tr>(<td>.*?)</tr>", text)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    return [row for row in cells if row[0] == html.escape(first, quote=True)]


def _section(text: str) -> str:
    start = text.index("<h2>Reviewers and agreement</h2>")
    return text[start : text.index("</section>", start)]


def test_csv_has_the_final_verdict_each_reviewers_and_the_adjudication(
    team: Path, tmp_path: Path
) -> None:
    with Session.open_existing(team, read_only=True) as session:
        settled = session.adjudication("b.png")
        files = write_report(session, tmp_path / "out")
    assert settled is not None
    rows = csv_rows(files.csv)
    assert list(rows[0]) == [*CSV_COLUMNS, "verdict:ann", "verdict:bob"]
    assert CSV_COLUMNS[-3:] == ("adjudicated_by", "adjudicated_at", "disputed")
    shown = [
        {k: r[k] for k in ("path", "verdict", "reviewer", "adjudicated_by", "disputed")}
        | {"ann": r["verdict:ann"], "bob": r["verdict:bob"]}
        for r in rows
    ]
    assert shown == [
        # Both said 1: the final verdict is theirs (the later one's name and time).
        {"path": "a.png", "verdict": "1", "reviewer": "bob", "adjudicated_by": ""}
        | {"disputed": "no", "ann": "1", "bob": "1"},
        {"path": "b.png", "verdict": "3", "reviewer": "lea", "adjudicated_by": "lea"}
        | {"disputed": "yes", "ann": "3", "bob": "2"},
        {"path": "c.png", "verdict": "2", "reviewer": "bob", "adjudicated_by": ""}
        | {"disputed": "no", "ann": "2", "bob": "2"},
        # Open: no final verdict until a lead settles it.
        {"path": "d.png", "verdict": "", "reviewer": "", "adjudicated_by": ""}
        | {"disputed": "yes", "ann": "4", "bob": "1"},
        {"path": "e.png", "verdict": "1", "reviewer": "ann", "adjudicated_by": ""}
        | {"disputed": "no", "ann": "1", "bob": ""},
        {"path": "f.png", "verdict": "", "reviewer": "", "adjudicated_by": ""}
        | {"disputed": "no", "ann": "", "bob": ""},
    ]
    assert rows[1]["adjudicated_at"] == rows[1]["time"] == settled.time
    assert rows[1]["note"] == "the scratch is the defect"  # the lead's, with the final verdict
    assert all(r["adjudicated_at"] == "" for i, r in enumerate(rows) if i != 1)


def test_agreement_section_shows_engine_agreements_numbers(team: Path) -> None:
    with Session.open_existing(team, read_only=True) as session:
        expected = session.agreement()
        text = report_html(ReportData.read(session), generated="GEN")
    section = _section(text)
    pair = expected.pairs[0]
    # By hand: both reviewed a-d, agreed on a and c (p_o 0.5); ann gave 1-4 once each, bob
    # 1 and 2 twice each (p_e 0.25); kappa (0.5 - 0.25) / 0.75.
    assert (pair.a, pair.b, pair.overall.n) == ("ann", "bob", 4)
    assert pair.overall.kappa == pytest.approx(1 / 3)
    for who, k in (("ann and bob", pair.overall), ("all 2 (Fleiss)", expected.fleiss)):
        row = [who, str(k.n), f"{k.observed:.3f}", f"{k.expected:.3f}", describe(k)]
        assert _row_cells(section, who) == [row]
    assert describe(pair.overall) == "0.33 (fair), 4 images"
    # Per predicted class: crazing (a, c: the same codes) and patches (b, d: all different).
    per_class = [
        [cls, who, str(k.n), f"{k.observed:.3f}", f"{k.expected:.3f}", describe(k)]
        for cls in ("crazing", "patches")
        for who, k in (
            ("ann and bob", pair.per_class[cls]),
            ("all 2 (Fleiss)", expected.fleiss_per_class[cls]),
        )
    ]
    assert [_row_cells(section, cls) for cls in ("crazing", "patches")] == [
        per_class[:2],
        per_class[2:],
    ]
    assert list(expected.fleiss_per_class) == ["crazing", "patches"]
    assert pair.per_class["crazing"].n == 2 and pair.per_class["patches"].kappa is not None
    counts = {
        "disputed images": "2",
        "settled by adjudication": "1",
        "still open": "1",
        "adjudicated images (disputed or not)": "1",
        "reviewers": "ann, bob",
    }
    for name, value in counts.items():
        assert _row_cells(section, name) == [[name, value]]
    # The open disagreement, with each reviewer's verdict.
    assert "<h3>Open disagreements (1)</h3>" in section
    assert _row_cells(section, "d.png") == [["d.png", "patches", "4", "1"]]
    signoff = text[text.index("<h2>Sign-off</h2>") :]
    assert "<td>reviewers</td><td>ann (5 verdicts), bob (4 verdicts)</td>" in signoff
    assert "<td>adjudicated by</td><td>lea (1 image)</td>" in signoff
    assert "<td>reviewed</td><td>4 of 6 images, 1 open disagreement</td>" in signoff
    assert "<td>reviewed</td><td>4 of 6, 1 open disagreement</td>" in text  # the facts


def test_a_settled_card_shows_every_reviewers_verdict_and_the_adjudication(team: Path) -> None:
    with Session.open_existing(team, read_only=True) as session:
        settled = session.adjudication("b.png")
        given = {v.reviewer: v for v in session.all_verdicts()["b.png"].values()}
        text = report_html(ReportData.read(session))
    assert settled is not None
    cards = re.findall(r'<div class="card verdict(\d)"><h3>([^<]+)</h3>', text)
    assert cards == [("3", "b.png"), ("2", "c.png")]  # d.png is open: no final verdict, no card
    card = text[text.index("<h3>b.png</h3>") : text.index("<h3>c.png</h3>")]
    assert f"<li>ann: 3 wrong class, {given['ann'].time}</li>" in card
    assert f"<li>bob: 2 right class, heat elsewhere, {given['bob'].time}</li>" in card
    assert f"<li>adjudicated by lea, {settled.time}</li>" in card
    assert '<p class="note">lea (adjudication): the scratch is the defect</p>' in card


def test_reviewer_names_are_escaped_and_never_formulas(tmp_path: Path) -> None:
    names = ("<script>alert(1)</script>", "=cmd|' /C calc'!A0", "+lead")
    path = tmp_path / "team.sqlite"
    _review(path, tmp_path / "images", names, note="<img src=x onerror=alert(2)>")
    with Session.open_existing(path, read_only=True) as session:
        files = write_report(session, tmp_path / "out")
    text = files.html.read_text(encoding="utf-8")
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; and =cmd|&#x27; /C calc&#x27;!A0" in text
    assert "adjudicated by +lead, " in text
    raw = files.csv.read_text(encoding="utf-8")
    rows = csv_rows(files.csv)
    # The header names the reviewers as they are; their cells are guarded text.
    assert list(rows[0])[-2:] == [f"verdict:{names[0]}", f"verdict:{names[1]}"]
    assert rows[1]["adjudicated_by"] == rows[1]["reviewer"] == "'+lead"
    assert rows[0]["reviewer"] == "'=cmd|' /C calc'!A0"  # a.png: the later of two equal verdicts
    cells = [cell for line in raw.splitlines() for cell in line.split(",")]
    assert not any(cell.startswith(("=", "+", "@", "-")) for cell in cells)


def test_one_reviewer_gets_no_agreement_section(tmp_path: Path) -> None:
    with Session.open(tmp_path / "s.sqlite", _context(tmp_path), "ann") as session:
        session.record_result("a.png", "crazing", 0.9)
        session.set_verdict("a.png", 3)
        text = report_html(ReportData.read(session))
        assert "Reviewers and agreement" not in text and "open disagreement" not in text
        session.adjudicate("a.png", 2)  # a lead's verdict even with one reviewer is reported
        text = report_html(ReportData.read(session))
    section = _section(text)
    assert "<p>One reviewer: no agreement to measure.</p>" in section
    assert _row_cells(section, "adjudicated images (disputed or not)") == [
        ["adjudicated images (disputed or not)", "1"]
    ]


def _print_to_pdf(page: Path, pdf: Path, profile: Path) -> None:
    command = [
        *headless_chromium(profile),
        "--no-pdf-header-footer",
        f"--print-to-pdf={pdf}",
        page.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium (/usr/bin/chromium) is not installed"
)
def test_team_report_prints_in_headless_chromium(team: Path, tmp_path: Path) -> None:
    from pypdf import PdfReader

    with Session.open_existing(team, read_only=True) as session:
        kappa = describe(session.agreement().pairs[0].overall)
        files = write_report(session, tmp_path / "out")
    pdf = tmp_path / "printed.pdf"
    _print_to_pdf(files.html, pdf, tmp_path / "profile")
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages]
    # The summary, two figures (no localisation scores), the agreement, the gallery, the
    # sign-off: a page each, with the header and "page i of n" on every page.
    total = len(pages)
    body = []
    for number, text in enumerate(pages, 1):
        header = f"Inspection report: images - weights {'ab' * 6} page {number} of {total} "
        assert text.startswith(header), text[:120]
        body.append(text[len(header) :])
    assert [b.split()[:2] for b in body] == [
        ["Inspection", "report:"],
        ["Verdicts", "per"],
        ["Prediction", "vs"],
        ["Reviewers", "and"],
        ["Images", "to"],
        ["Sign-o\ufb00", "reviewers"],  # (Chromium sets "ff" as a ligature)
    ]
    agreement = body[3]
    assert f"ann and bob 4 0.500 0.250 {kappa}" in agreement
    assert "Open disagreements (1) image prediction ann bob d.png patches 4 1" in agreement
    gallery = body[4]
    assert "adjudicated by lea" in gallery and "ann: 3 wrong class" in gallery


# --- team sessions on PostgreSQL --------------------------------------------------------------


def _report(location: str | Path, out: Path) -> int:
    return run(["report", str(location), "--output", str(out), "--no-images"])


def _without_times(path: Path) -> str:
    return TIME.sub("TIME", path.read_text(encoding="utf-8"))


def test_report_of_a_team_url_equals_the_same_verdicts_in_a_file(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _review(pg_url, tmp_path / "images")
    _review(tmp_path / "same.sqlite", tmp_path / "images")
    assert _report(pg_url, tmp_path / "team") == 0
    assert _report(tmp_path / "same.sqlite", tmp_path / "file") == 0
    team_csv = _without_times(tmp_path / "team" / "report.csv")
    assert team_csv == _without_times(tmp_path / "file" / "report.csv")
    assert team_csv.splitlines()[1].endswith(",no,1,1")  # a.png: both reviewers' columns
    page = (tmp_path / "team" / "report.html").read_text(encoding="utf-8")
    assert f"<td>session</td><td>{pg_url}</td>" in page
    assert "<td>reviewers</td><td>ann (5 verdicts), bob (4 verdicts)</td>" in page
    assert f"wrote {tmp_path / 'team' / 'report.csv'}" in capsys.readouterr().err


def _with_password(url: str, password: str) -> str:
    return url.replace("@", f":{password}@", 1)


def test_a_password_in_the_url_reaches_the_server_and_no_file(
    pg_url: str, pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _review(pg_url, tmp_path / "images")
    monkeypatch.delenv("PGPASSWORD")
    assert _report(_with_password(pg_url, pg_server.password), tmp_path / "r") == 0
    for name in ("report.csv", "report.html"):
        assert pg_server.password not in (tmp_path / "r" / name).read_text(encoding="utf-8")
    assert f"<td>session</td><td>{pg_url}</td>" in (tmp_path / "r" / "report.html").read_text(
        encoding="utf-8"
    )


def test_a_wrong_password_is_one_line_without_the_password(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _review(pg_url, tmp_path / "images")
    wrong = "not-the-pw-4711"
    for location, env in ((pg_url, wrong), (_with_password(pg_url, wrong), None)):
        if env is None:
            monkeypatch.delenv("PGPASSWORD")
        else:
            monkeypatch.setenv("PGPASSWORD", env)
        assert _report(location, tmp_path / "r") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(
            f"error: cannot reach team session '{pg_url}'"
        )
        assert "password authentication failed" in err and wrong not in err
        assert not (tmp_path / "r").exists()


class _Terminal:
    """stdin as a terminal, for the password prompt."""

    def isatty(self) -> bool:
        return True


def _prompt(monkeypatch: pytest.MonkeyPatch, answer: str) -> list[str]:
    asked: list[str] = []

    def typed(prompt: str) -> str:
        asked.append(prompt)
        return answer

    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setattr(getpass, "getpass", typed)
    return asked


def test_a_missing_password_is_asked_once_on_a_terminal(
    pg_url: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    _review(pg_url, tmp_path / "images")
    asked = _prompt(monkeypatch, pg_server.password)
    assert _report(pg_url, tmp_path / "off") == 2  # not a terminal: the error, no prompt
    assert asked == [] and "set the right password in PGPASSWORD" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", _Terminal())
    assert _report(pg_url, tmp_path / "r") == 0
    assert asked == [f"password for {pg_url}: "]
    assert pg_server.password not in capsys.readouterr().err
    wrong = _prompt(monkeypatch, "typed-wrong-0815")
    assert _report(pg_url, tmp_path / "r2") == 2  # asked once, then the one-line error
    err = capsys.readouterr().err
    assert wrong == [f"password for {pg_url}: "] and err.count("\n") == 1
    assert "password authentication failed" in err and "typed-wrong-0815" not in err


def test_a_prompt_without_an_answer_is_one_line(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _review(pg_url, tmp_path / "images")
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setattr("sys.stdin", _Terminal())

    def closed(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", closed)
    assert _report(pg_url, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert err == "error: no password given; set PGPASSWORD or type it when asked\n"


def test_team_report_pdf_has_the_agreement_and_the_leads(qapp, team: Path, tmp_path: Path) -> None:
    """report.pdf (Qt's writer, as `report --pdf` and the window write it)."""
    from pypdf import PdfReader

    from ui.report_pdf import write_report_pdf

    with Session.open_existing(team, read_only=True) as session:
        kappa = describe(session.agreement().pairs[0].overall)
        files = write_report(session, tmp_path / "out", generated="GEN")
    pages = write_report_pdf(files.html, tmp_path / "out" / "report.pdf")
    texts = [
        " ".join(p.extract_text().split()) for p in PdfReader(tmp_path / "out" / "report.pdf").pages
    ]
    assert len(texts) == pages
    agreement = [t for t in texts if "Reviewers and agreement" in t]
    assert len(agreement) == 1 and f"ann and bob 4 0.500 0.250 {kappa}" in agreement[0]
    assert "adjudicated by lea (1 image)" in texts[-1]
    assert "reviewed 4 of 6 images, 1 open disagreement" in texts[-1]
