"""Bought together: products that share baskets (an order, or a session's cart adds and purchases),
scored by cosine similarity ``co / sqrt(n_a * n_b)`` with a minimum number of shared baskets.

Baskets larger than ``max_basket`` products are left out: they are bulk orders whose pairs say little
and cost quadratically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class TogetherParams:
    min_support: int = 2
    max_basket: int = 50

    def salt(self) -> str:
        return f"together:{self.min_support}:{self.max_basket}"


def baskets(events: DataFrame, max_basket: int) -> DataFrame:
    """(basket, product_id, first_ts): distinct products per basket, with when each first appeared."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    items = (
        events.where(F.col("basket").isNotNull())
        .groupBy("basket", "product_id")
        .agg(F.min("ts").alias("first_ts"))
    )
    size = F.count(F.lit(1)).over(Window.partitionBy("basket"))
    return items.withColumn("size", size).where(F.col("size") <= max_basket).drop("size")


def related(basket_items: DataFrame, params: TogetherParams, top: int) -> DataFrame:
    """(product_id, rank, related_id, score): each product's ``top`` most similar co-purchases."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    multi = basket_items.select("basket", "product_id")
    counts = multi.groupBy("product_id").agg(F.count(F.lit(1)).alias("n"))
    left, right = multi.alias("a"), multi.alias("b")
    pairs = (
        left.join(
            right, (F.col("a.basket") == F.col("b.basket")) & (F.col("a.product_id") < F.col("b.product_id"))
        )
        .groupBy(F.col("a.product_id").alias("x"), F.col("b.product_id").alias("y"))
        .agg(F.count(F.lit(1)).alias("co"))
        .where(F.col("co") >= params.min_support)
    )
    both = pairs.select("x", "y", "co").unionByName(
        pairs.select(F.col("y").alias("x"), F.col("x").alias("y"), "co")
    )
    nx, ny = counts.alias("nx"), counts.alias("ny")
    scored = (
        both.join(nx, F.col("x") == F.col("nx.product_id"))
        .join(ny, F.col("y") == F.col("ny.product_id"))
        .select(
            F.col("x").alias("product_id"),
            F.col("y").alias("related_id"),
            F.round(F.col("co") / F.sqrt(F.col("nx.n") * F.col("ny.n")), 6).alias("score"),
        )
    )
    order = Window.partitionBy("product_id").orderBy(F.desc("score"), F.asc("related_id"))
    return (
        scored.withColumn("rank", F.row_number().over(order).cast("int"))
        .where(F.col("rank") <= top)
        .select("product_id", "rank", "related_id", "score")
    )


def holdout_queries(test_baskets: DataFrame, train_products: DataFrame, max_queries: int) -> DataFrame:
    """(basket, query, truth_id): per holdout basket of 2+ products, its first product (known from
    training) is the query and the others are what a good related list contains."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("basket").orderBy("first_ts", "product_id")
    ranked = test_baskets.withColumn("pos", F.row_number().over(order)).withColumn(
        "size", F.count(F.lit(1)).over(Window.partitionBy("basket"))
    )
    queries = (
        ranked.where((F.col("pos") == 1) & (F.col("size") >= 2))
        .join(train_products, "product_id")
        .select("basket", F.col("product_id").alias("query"))
        .orderBy(F.xxhash64("basket"), "basket")
        .limit(max_queries)
    )
    others = ranked.where(F.col("pos") > 1).select("basket", F.col("product_id").alias("truth_id"))
    return queries.join(others, "basket")
