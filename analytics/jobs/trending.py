"""Trending: the most searched queries and the most viewed and bought products, per region and over all
regions (region ""), in the hour and the day ending at the newest event of the input.

Each event weighs its kind (a purchase more than a cart add, more than a view) times a decay that halves
every quarter of the window, so the last minutes count most; an entry needs ``min_count`` events from at
least ``min_actors`` distinct shoppers, so a handful of events (or one bot) cannot trend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from analytics.schema import CART_ADD, PURCHASE, SEARCH, VIEW

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

WINDOWS: dict[str, int] = {"hour": 3600, "day": 86_400}
PRODUCT_WEIGHTS: dict[str, float] = {VIEW: 1.0, CART_ADD: 2.0, PURCHASE: 4.0}
KINDS = ("queries", "products")


@dataclass(frozen=True)
class TrendingParams:
    top: int = 50
    min_count: int = 5
    min_actors: int = 3
    half_life_fraction: float = 0.25  # of the window

    def salt(self) -> str:
        return f"trending:v1:{self.top}:{self.min_count}:{self.min_actors}:{self.half_life_fraction}"


def _weight() -> Column:
    from pyspark.sql import functions as F

    weight = F.when(F.col("event_type") == SEARCH, F.lit(1.0))
    for kind, value in PRODUCT_WEIGHTS.items():
        weight = weight.when(F.col("event_type") == kind, F.lit(value))
    return weight


def _signals(activity: DataFrame, watermark: datetime) -> DataFrame:
    """One row per usable event of the last day: kind, key, weight, age in seconds, actor, region."""
    from pyspark.sql import functions as F

    wm = F.lit(watermark).cast("timestamp")
    is_search = F.col("event_type") == SEARCH
    return (
        activity.where(F.col("occurred_at") <= wm)
        .where(F.col("occurred_at") > wm - F.expr(f"INTERVAL {max(WINDOWS.values())} SECONDS"))
        .select(
            F.when(is_search, F.lit("queries"))
            .when(F.col("event_type").isin(*PRODUCT_WEIGHTS), F.lit("products"))
            .alias("kind"),
            F.when(is_search, F.lower(F.trim(F.col("query")))).otherwise(F.col("product_id")).alias("key"),
            _weight().alias("weight"),
            ((F.unix_micros(wm) - F.unix_micros(F.col("occurred_at"))) / 1e6).alias("age"),
            F.coalesce(F.col("user_id"), F.col("session_id")).alias("actor"),
            F.explode(F.array_distinct(F.array(F.coalesce(F.col("region"), F.lit("")), F.lit("")))).alias(
                "region"
            ),
        )
        .where(F.col("kind").isNotNull() & F.col("key").isNotNull() & (F.col("key") != ""))
    )


def trending(activity: DataFrame, watermark: datetime, params: TrendingParams) -> tuple[DataFrame, list[str]]:
    """The table (kind, window, region, rank, key, score, count, actors, window_end) and the regions of
    the last day's events (each gets a list, even an empty one), from one pass over the input."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    signals = _signals(activity, watermark)
    windows = [
        signals.where(F.col("age") < seconds).select(
            "*",
            F.lit(name).alias("window"),
            (
                F.col("weight") * F.exp(-math.log(2) * F.col("age") / (seconds * params.half_life_fraction))
            ).alias("decayed"),
        )
        for name, seconds in WINDOWS.items()
    ]
    both = windows[0].unionByName(windows[1])
    totals = (
        both.groupBy("kind", "window", "region", "key")
        .agg(
            F.sum("decayed").alias("score"),
            F.count(F.lit(1)).alias("count"),
            F.countDistinct("actor").alias("actors"),
        )
        .cache()
    )
    seen = totals.where((F.col("window") == "day") & (F.col("region") != "")).select("region").distinct()
    regions = sorted(row["region"] for row in seen.collect())
    scored = totals.where((F.col("count") >= params.min_count) & (F.col("actors") >= params.min_actors))
    order = Window.partitionBy("kind", "window", "region").orderBy(F.desc("score"), F.asc("key"))
    table = (
        scored.withColumn("score", F.round("score", 6))
        .withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= params.top)
        .select(
            "kind",
            "window",
            "region",
            F.col("rank").cast("int"),
            "key",
            "score",
            F.col("count").cast("long"),
            F.col("actors").cast("long"),
            F.lit(watermark).cast("timestamp").alias("window_end"),
        )
    )
    return table, regions
