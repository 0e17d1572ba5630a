"""``emporium analytics report``: one self-contained HTML page (charts as base64 PNGs) from the latest
committed outputs of each job: trending, revenue over time and by category, model quality."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from analytics.jobs.outputs import JobOutputs


class ReportError(RuntimeError):
    """Nothing to report on."""


def _png(draw: Callable[[Any], None], width: float = 8, height: float = 4) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, height))
    try:
        draw(axes)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(figure)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _barh(labels: list[str], values: list[float], title: str) -> str:
    def draw(ax: Any) -> None:
        ax.barh(labels[::-1], values[::-1], color="#4c72b0")
        ax.set_title(title)

    return _png(draw)


def _trending(table: pa.Table) -> str:
    rows = [r for r in table.to_pylist() if r["window"] == "day" and r["region"] == ""]
    parts = []
    for kind in ("products", "queries"):
        top = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["rank"])[:10]
        if top:
            title = f"Trending {kind}, last day, all regions (decayed score)"
            parts.append(_barh([r["key"] for r in top], [r["score"] for r in top], title))
    return "".join(parts) or "<p>No entry reached the minimum support.</p>"


def _revenue(table: pa.Table) -> str:
    by_day: dict[Any, Decimal] = defaultdict(Decimal)
    by_category: dict[str, Decimal] = defaultdict(Decimal)
    for row in table.to_pylist():
        by_day[row["day"]] += row["revenue"]
        by_category[row["category"] or "(none)"] += row["revenue"]
    days = sorted(by_day)

    def over_time(ax: Any) -> None:
        ax.plot(days, [float(by_day[d]) for d in days], marker="o")
        ax.set_title("Revenue per day (all currencies as recorded)")
        ax.tick_params(axis="x", rotation=45)

    top = sorted(by_category.items(), key=lambda kv: kv[1], reverse=True)[:15]
    return _png(over_time) + _barh(
        [c for c, _ in top], [float(v) for _, v in top], "Revenue by category (top 15)"
    )


def _quality(table: pa.Table, decision: str) -> str:
    rows = {r["model"]: r for r in table.to_pylist()}
    models = [m for m in ("als", "popularity", "bought_together", "popularity_related") if m in rows]
    metrics = ("precision", "recall", "map")

    def draw(ax: Any) -> None:
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, [rows[model][m] for m in metrics], width, label=model)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], [f"{m}@10" for m in metrics])
        ax.set_title("Model quality on the time-based holdout")
        ax.legend()

    cells = "".join(
        f"<tr><td>{html.escape(m)}</td>"
        + "".join(f"<td>{rows[m][x]:.4f}</td>" for x in metrics)
        + f"<td>{rows[m]['users']}</td></tr>"
        for m in models
    )
    head = "<tr><th>model</th><th>precision@10</th><th>recall@10</th><th>MAP@10</th><th>evaluated</th></tr>"
    return _png(draw) + f"<table>{head}{cells}</table><p>{html.escape(decision)}</p>"


def _section(lake: Path, job: str, render: Callable[[JobOutputs, str], str]) -> str:
    outputs = JobOutputs(lake, job)
    version = outputs.latest()
    if version is None:
        return f"<h2>{job}</h2><p>Not run yet: <code>emporium analytics run {job}</code>.</p>"
    manifest = outputs.manifest(version)
    meta = f"version {version}, input {manifest['input_rows']} rows up to {manifest['watermark']}"
    return f"<h2>{job}</h2><p class=meta>{html.escape(meta)}</p>{render(outputs, version)}"


def render_report(lake: Path) -> str:
    if not (lake / "outputs").is_dir():
        raise ReportError(f"no job outputs under {lake / 'outputs'}: run `emporium analytics run all` first")
    sections = [
        _section(lake, "trending", lambda o, v: _trending(o.read(v, "trending"))),
        _section(lake, "revenue", lambda o, v: _revenue(o.read(v, "revenue"))),
        _section(
            lake,
            "recommendations",
            lambda o, v: _quality(o.read(v, "quality"), o.manifest(v)["summary"].get("decision", "")),
        ),
    ]
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.2em .8em}.meta{color:#666}"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Emporium analytics</title>"
        f"<style>{style}</style></head><body><h1>Emporium analytics report</h1>"
        f"{''.join(sections)}</body></html>"
    )
