"""The recommendations job: judge ALS and bought-together against popularity on a time-based holdout,
then build what gets published from all the data.

Why retrain on everything: the holdout only chooses *whether* a model is worth serving; the newest
fifth of the data is the most telling about what shoppers want next, so the published model must see
it. A model that does not beat popularity (``analytics.metrics.beats``) is not published: its table is
not written and its events are not sent; popularity (always published) is what the read models serve.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analytics.jobs import als, popularity, together
from analytics.jobs.interactions import holdout_cut, holdout_truth, interactions, user_ratings
from analytics.metrics import Quality, beats, evaluate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row


@dataclass(frozen=True)
class RecParams:
    k: int = 10
    publish: int = 50  # per user: the API drops the ones out of stock
    related: int = 20
    holdout: float = 0.2
    half_life_days: float = 7.0
    max_eval: int = 5_000  # users (and baskets) the holdout judges: a fixed hash-chosen sample
    als: als.AlsParams = field(default_factory=als.AlsParams)
    together: together.TogetherParams = field(default_factory=together.TogetherParams)

    def salt(self) -> str:
        parts = (self.k, self.publish, self.related, self.holdout, self.half_life_days, self.max_eval)
        return f"recommendations:v1:{parts}:{self.als.salt()}:{self.together.salt()}"


@dataclass
class RecResult:
    tables: dict[str, DataFrame]
    qualities: list[Quality]
    publish_als: bool
    publish_related: bool

    def summary(self) -> dict[str, Any]:
        return {
            "quality": [_quality_dict(q) for q in self.qualities],
            "published": {"user_recs": self.publish_als, "related": self.publish_related, "popular": True},
            "decision": decision_text(self.qualities, self.publish_als, self.publish_related),
        }


def _quality_dict(q: Quality) -> dict[str, Any]:
    return {
        "model": q.model,
        "k": q.k,
        "precision": q.precision,
        "recall": q.recall,
        "map": q.map,
        "users": q.users,
    }


def decision_text(qualities: list[Quality], publish_als: bool, publish_related: bool) -> str:
    q = {x.model: x for x in qualities}

    def line(model: str, base: str, won: bool) -> str:
        a, b = q[model], q[base]
        verdict = "published" if won else "NOT published, popularity is served instead"
        return f"{model} p@{a.k}={a.precision:.4f} vs {base} {b.precision:.4f}: {verdict}"

    return "; ".join(
        (
            line("als", "popularity", publish_als),
            line("bought_together", "popularity_related", publish_related),
        )
    )


def _lists(rows: Iterable[Row], key: str, value: str) -> dict[str, list[str]]:
    """Ranked lists from collected (key, rank, value) rows."""
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        out[row[key]].append((row["rank"], row[value]))
    return {k: [v for _, v in sorted(items)] for k, items in out.items()}


def _judge_users(train: DataFrame, test: DataFrame, cut: float, params: RecParams) -> tuple[Quality, Quality]:
    from pyspark.sql import functions as F

    truth_df = holdout_truth(train, test, params.max_eval).cache()
    truth: dict[str, set[str]] = defaultdict(set)
    for row in truth_df.collect():
        truth[row["user_id"]].add(row["product_id"])
    users = truth_df.select("user_id").distinct()
    seen = train.where(F.col("user_id").isNotNull()).select("user_id", "product_id").distinct()
    fitted = als.fit(user_ratings(train), params.als)
    als_recs = _lists(als.recommend(fitted, users, seen, params.k).collect(), "user_id", "product_id")
    pop = popularity.popular_by_region(popularity.decayed(train, cut, params.half_life_days), params.k + 50)
    pop = pop.where(F.col("region") == "")
    pop_recs = _lists(
        popularity.popular_for_users(users, pop, seen, params.k).collect(), "user_id", "product_id"
    )
    truth_df.unpersist()
    return evaluate("als", als_recs, truth, params.k), evaluate("popularity", pop_recs, truth, params.k)


def _judge_related(events: DataFrame, cut: float, params: RecParams) -> tuple[Quality, Quality]:
    """Per holdout basket: from its first product, predict the rest; popularity predicts the most
    popular products other than the first one."""
    from pyspark.sql import functions as F

    items = together.baskets(events, params.together.max_basket)
    start = items.groupBy("basket").agg(F.min("first_ts").alias("start"))
    items = items.join(start, "basket")
    train_b, test_b = items.where(F.col("start") < cut), items.where(F.col("start") >= cut)
    rel = together.related(train_b, params.together, params.k)
    train_products = train_b.select("product_id").distinct()
    pairs = together.holdout_queries(test_b, train_products, params.max_eval).collect()
    truth: dict[str, set[str]] = defaultdict(set)
    query_of: dict[str, str] = {}
    for row in pairs:
        truth[row["basket"]].add(row["truth_id"])
        query_of[row["basket"]] = row["query"]
    queried = sorted(set(query_of.values()))
    rel_rows = rel.where(F.col("product_id").isin(queried)).collect() if queried else []
    by_product = _lists(rel_rows, "product_id", "related_id")
    train_events = events.where(F.col("ts") < cut)
    pop_rows = popularity.popular_by_region(
        popularity.decayed(train_events, cut, params.half_life_days), params.k + 1
    )
    pop_list = [
        r["product_id"]
        for r in sorted(pop_rows.where(F.col("region") == "").collect(), key=lambda r: r["rank"])
    ]
    bt = {b: by_product.get(q, []) for b, q in query_of.items()}
    pop = {b: [p for p in pop_list if p != q][: params.k] for b, q in query_of.items()}
    return (
        evaluate("bought_together", bt, truth, params.k),
        evaluate("popularity_related", pop, truth, params.k),
    )


def recommendations(activity: DataFrame, watermark_ts: float, params: RecParams) -> RecResult:
    """Judge on the holdout, then the tables to publish: popular (always), user_recs and related (when
    their model beat popularity), quality (the four measurements)."""
    from pyspark.sql import functions as F

    events = interactions(activity).cache()
    cut = holdout_cut(events, params.holdout)
    train, test = events.where(F.col("ts") < cut), events.where(F.col("ts") >= cut)
    als_q, pop_q = _judge_users(train, test, cut, params)
    bt_q, pop_bq = _judge_related(events, cut, params)
    publish_als, publish_related = beats(als_q, pop_q), beats(bt_q, pop_bq)
    scores = popularity.decayed(events, watermark_ts, params.half_life_days)
    tables: dict[str, DataFrame] = {"popular": popularity.popular_by_region(scores, params.publish)}
    if publish_als:
        seen = events.where(F.col("user_id").isNotNull()).select("user_id", "product_id").distinct()
        fitted = als.fit(user_ratings(events), params.als)
        tables["user_recs"] = als.recommend(fitted, None, seen, params.publish)
    if publish_related:
        items = together.baskets(events, params.together.max_basket)
        tables["related"] = together.related(items, params.together, params.related)
    qualities = [als_q, pop_q, bt_q, pop_bq]
    spark = activity.sparkSession
    tables["quality"] = spark.createDataFrame(
        [(q.model, q.k, q.precision, q.recall, q.map, q.users) for q in qualities],
        "model string, k int, precision double, recall double, map double, users long",
    )
    return RecResult(tables, qualities, publish_als, publish_related)
