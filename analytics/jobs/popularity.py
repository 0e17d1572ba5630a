"""Time-decayed popularity: the baseline every model must beat, and what unknown users are served.

A product's score is the sum of its interaction weights, each halved for every ``half_life_days`` it
lies before ``now``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def decayed(events: DataFrame, now: float, half_life_days: float) -> DataFrame:
    """(product_id, region, score) from interactions (``ts`` in epoch seconds) up to ``now``."""
    from pyspark.sql import functions as F

    factor = F.pow(F.lit(0.5), (F.lit(now) - F.col("ts")) / (half_life_days * 86_400.0))
    return (
        events.where(F.col("ts") <= now)
        .groupBy("product_id", "region")
        .agg(F.sum(F.col("weight") * factor).alias("score"))
    )


def popular_by_region(scores: DataFrame, top: int) -> DataFrame:
    """(region, rank, product_id, score): the ``top`` per region and over all regions (region "")."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    overall = scores.groupBy("product_id").agg(F.sum("score").alias("score")).withColumn("region", F.lit(""))
    regional = scores.where(F.col("region") != "")
    both = regional.select("product_id", "region", "score").unionByName(
        overall.select("product_id", "region", "score")
    )
    order = Window.partitionBy("region").orderBy(F.desc("score"), F.asc("product_id"))
    return (
        both.withColumn("score", F.round("score", 6))
        .withColumn("rank", F.row_number().over(order).cast("int"))
        .where(F.col("rank") <= top)
        .select("region", "rank", "product_id", "score")
    )


def popular_for_users(users: DataFrame, popular: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """(user_id, rank, product_id): the global list minus what each user already took, top ``k``.
    ``popular`` is (rank, product_id) with enough entries to survive the exclusion."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    candidates = users.crossJoin(popular.select(F.col("rank").alias("pop_rank"), "product_id"))
    fresh = candidates.join(seen, ["user_id", "product_id"], "left_anti")
    order = Window.partitionBy("user_id").orderBy("pop_rank")
    return (
        fresh.withColumn("rank", F.row_number().over(order).cast("int"))
        .where(F.col("rank") <= k)
        .select("user_id", "rank", "product_id")
    )
