"""``emporium eval relevance``: score the storefront ranking against graded judgments, beside plain BM25."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from emporium.cli.context import run
from emporium.relevance import evaluate_catalog, format_report
from ingest.profiles import PROFILE_NAMES
from search.relevance.metrics import read_judgments

eval_app = typer.Typer(help="Measure search quality.", no_args_is_help=True)


def read_typo_pairs(path: Path) -> dict[str, str]:
    """A judgments file's optional 4th column ``clean_query``: typo query -> the query it was made from."""
    pairs: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) >= 4 and row[3].strip() and row[3].strip() != "clean_query":
                pairs[row[0].strip()] = row[3].strip()
    return pairs


@eval_app.command("relevance")
def relevance(
    judgments: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CSV query,product_ref,grade")],
    catalog: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="The catalog feed (CSV).")],
    profile: Annotated[str, typer.Option(help=f"Mapping profile: {', '.join(PROFILE_NAMES)}.")] = "canonical",
    titles_only: Annotated[
        bool, typer.Option(help="Index only titles (no brand, category, description), as BM25 sees them.")
    ] = False,
    search_url: Annotated[
        str | None, typer.Option(help="Search index URL (default: Tantivy in the throw-away data dir).")
    ] = None,
    keep: Annotated[
        Path | None,
        typer.Option(help="Import into this folder and keep it; reuse it when it holds an import already."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Import CATALOG into a throw-away data dir and print nDCG@10 (full, condensed), MRR and recall@100 of
    /v1/search and of Okapi BM25 over titles (k1 1.2, b 0.75), computed in the same run."""
    judged = read_judgments(judgments)
    pairs = read_typo_pairs(judgments)
    report = run(
        evaluate_catalog(
            judged,
            catalog,
            profile,
            titles_only=titles_only,
            search_url=search_url,
            typo_pairs=pairs or None,
            keep=keep,
        )
    )
    for line in format_report(report):
        typer.echo(line)
    if json_out is not None:
        json_out.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the root ``emporium`` command."""
    app.add_typer(eval_app, name="eval")
