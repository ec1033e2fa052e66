"""Checks every study's report test makes: a self-contained HTML file and its Markdown
twin, both naming the run's MLflow run id and both logged to that run."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import mlflow_runs

PNG_DATA = "data:image/png;base64,"


class Collect(HTMLParser):
    """The tags and the image sources of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def latest(folder: Path, name: str) -> Path:
    versions = sorted((folder / name).iterdir())
    assert versions, f"no saved version of {folder / name}"
    return versions[-1] / name


def read_report(project: Path, study: str) -> tuple[str, str, Collect]:
    """The latest report of ``study`` (HTML, Markdown, parsed HTML), checked to be one
    self-contained document that names the run's MLflow run id and is logged to it."""
    reporting = project / "data/08_reporting" / study
    html = latest(reporting, "report.html").read_text(encoding="utf-8")
    markdown = latest(reporting, "report.md").read_text(encoding="utf-8")
    parsed = Collect()
    parsed.feed(html)
    assert {"html", "body", "table", "img"} <= set(parsed.tags)
    # Self-contained: every figure is embedded, nothing is fetched.
    assert parsed.images and all(src.startswith(PNG_DATA) for src in parsed.images)

    client, runs = mlflow_runs(project)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.run_id in html and parent.info.run_id in markdown
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert logged == {"report/report.html", "report/report.md"}
    return html, markdown, parsed


def check_analysis(project: Path, study: str, counts: dict[str, int], part: str = "") -> None:
    """The dataset analysis of ``study`` (``part``: one of several datasets) counted
    ``counts`` images per split and wrote its figures."""
    import pandas as pd

    folder = project / "data/08_reporting" / study / "analysis" / part
    table = pd.read_csv(latest(folder, "class_counts.csv"))
    assert {name: int(table[name].sum()) for name in counts} == counts
    for figure in ("class_counts", "samples", "tsne"):
        assert latest(folder, f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def claim_verdicts(markdown: str, html: str, study: str) -> list[str]:
    """The claims table comes first among the report's tables (open in the HTML), with one
    row per claim of ``study``'s conf/base YAML in the order declared; returns their
    verdicts, checked to be those of the claims table the run saved."""

    from cnn_lab.evaluation.claims import CLAIM_COLUMNS, VERDICTS, parse_claims
    from cnn_lab.runtime.hooks import default_parameters

    claims = list(parse_claims(default_parameters(study)["claims"]).values())
    tables = markdown.split("\n## Tables\n", 1)[1].lstrip()
    assert tables.startswith("### claims\n"), tables[:200]
    assert f"| {' | '.join(CLAIM_COLUMNS)} |" in tables
    assert "<details open>\n<summary>claims</summary>" in html
    rows = [line for line in tables.split("\n### ", 1)[0].splitlines() if line.startswith("| ")]
    rows = rows[1:]  # the header
    assert len(rows) == len(claims)
    verdicts = []
    for row, claim in zip(rows, claims, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[0] == claim.claim and cells[1] == claim.source, cells
        assert cells[3] in VERDICTS, cells
        verdicts.append(cells[3])
    return verdicts


def check_claims_file(project: Path, study: str, verdicts: list[str]) -> None:
    """The claims table the run saved (what `kedro run` ends with) has the report's verdicts."""
    import pandas as pd

    saved = pd.read_csv(latest(project / "data/08_reporting" / study, "claims.csv"))
    assert saved["verdict"].tolist() == verdicts


def check_best_confusion(markdown: str, html: str) -> None:
    """The report shows the best variant's test confusion matrix, captioned in words."""
    from cnn_lab.evaluation.report import CAPTIONS

    words = CAPTIONS["confusion_matrix_best"]
    assert f"- confusion_matrix_best: {words}" in markdown
    escaped = words.replace("'", "&#39;")  # the HTML template escapes its text
    assert f"<figcaption>{escaped} <code>confusion_matrix_best</code>" in html
