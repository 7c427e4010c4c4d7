"""The extra statistics on show: a web UI tab, CSV files beside Locust's, a section in its HTML.

Rows are (statistic, value) pairs made by :class:`sipharness.load.run.LoadRun.summary_rows`.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Rows = list[tuple[str, str]]
TABLES = (("sip-calls", "SIP calls"), ("sip-generator", "Generator saturation"))


def rows_as_dicts(rows: Rows) -> list[dict[str, str]]:
    return [{"statistic": name, "value": value} for name, value in rows]


def install_web_ui(web_ui: Any, tables: Callable[[], dict[str, Rows]]) -> None:
    """Add the SIP tabs to Locust's web UI (and a CSV download), fed by ``tables()``."""
    from flask import make_response, request

    web_ui.template_args["extended_tabs"] = [{"title": t, "key": k} for k, t in TABLES]
    structure = [{"key": "statistic", "title": "Statistic"}, {"key": "value", "title": "Value"}]
    web_ui.template_args["extended_tables"] = [{"key": k, "structure": structure}
                                               for k, _ in TABLES]  # fmt: skip
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./sipharness/stats.csv", "title": "Download SIP call and generator statistics"}]

    @web_ui.app.after_request
    def add_sip_stats(response: Any) -> Any:
        if not request.path.endswith("/stats/requests") or response.json is None:
            return response
        current = tables()
        extended = [{"key": k, "data": rows_as_dicts(current.get(k, []))} for k, _ in TABLES]
        response.set_data(json.dumps({**response.json, "extended_stats": extended}))
        return response

    @web_ui.app.route("/sipharness/stats.csv")
    def sip_stats_csv() -> Any:
        response = make_response(tables_csv(tables()))
        response.headers["Content-Type"] = "text/csv"
        response.headers["Content-Disposition"] = "attachment;filename=sipharness_stats.csv"
        return response


def tables_csv(tables: dict[str, Rows]) -> str:
    """``table,statistic,value`` lines for every table."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "statistic", "value"])
    for key, rows in tables.items():
        for name, value in rows:
            writer.writerow([key, name, value])
    return out.getvalue()


def write_csv_files(prefix: str, tables: dict[str, Rows],
                    history: Iterable[dict[str, float]]) -> list[Path]:  # fmt: skip
    """``PREFIX_sip.csv`` (the tables) and ``PREFIX_sip_history.csv`` (one row a second)."""
    summary = Path(f"{prefix}_sip.csv")
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(tables_csv(tables), encoding="utf-8")
    history_path = Path(f"{prefix}_sip_history.csv")
    with history_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "calls_started", "calls_answered", "calls_held"])
        for row in history:
            writer.writerow([f"{row['time']:.3f}", int(row["started"]), int(row["answered"]),
                             int(row["held"])])  # fmt: skip
    return [summary, history_path]


def html_section(tables: dict[str, Rows], warnings: list[str]) -> str:
    """A self-contained HTML section with the SIP tables and any saturation warning."""
    parts = ['<section id="sipharness" style="font-family:sans-serif;margin:2em">']
    if warnings:
        parts.append('<p style="color:#b00020"><strong>The generator may have been the '
                     "bottleneck, not the target:</strong></p><ul>")  # fmt: skip
        parts.extend(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append("</ul>")
    for key, title in TABLES:
        parts.append(f"<h2>{html.escape(title)}</h2><table border=1 cellpadding=4 "
                     f'style="border-collapse:collapse" id="{key}">'
                     "<tr><th>Statistic</th><th>Value</th></tr>")  # fmt: skip
        parts.extend(f"<tr><td>{html.escape(n)}</td><td>{html.escape(v)}</td></tr>"
                     for n, v in tables.get(key, []))  # fmt: skip
        parts.append("</table>")
    parts.append("</section>")
    return "".join(parts)


def add_to_html_report(path: str, section: str) -> bool:
    """Insert ``section`` before ``</body>`` of Locust's HTML report; False if it is absent."""
    file = Path(path)
    if not file.exists():
        return False
    text = file.read_text(encoding="utf-8")
    marker = text.rfind("</body>")
    text = text[:marker] + section + text[marker:] if marker >= 0 else text + section
    file.write_text(text, encoding="utf-8")
    return True
