"""Who took which product, how strongly, and the time-based holdout the recommenders are judged on.

Only signed-in shoppers (``user_id``) get personal recommendations. A view weighs 1, a cart add 2, a
purchase 4 (implicit feedback: confidence, not a rating). The holdout is the newest ``fraction`` of the
interactions in time: a model is trained on what happened before the cut and asked to predict the
products each user went on to take that they had not taken before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.schema import CART_ADD, PURCHASE, VIEW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

INTERACTION_WEIGHTS: dict[str, float] = {VIEW: 1.0, CART_ADD: 2.0, PURCHASE: 4.0}


def interactions(activity: DataFrame) -> DataFrame:
    """Columns: user_id, product_id, region, weight, ts (epoch seconds, double), occurred_at, basket."""
    from pyspark.sql import functions as F

    weight = F.lit(None)
    for kind, value in INTERACTION_WEIGHTS.items():
        weight = F.when(F.col("event_type") == kind, F.lit(value)).otherwise(weight)
    is_basket = F.col("event_type").isin(CART_ADD, PURCHASE)
    basket = F.when(
        F.col("order_id").isNotNull() & (F.col("event_type") == PURCHASE), F.concat(F.lit("o:"), "order_id")
    ).when(is_basket & F.col("session_id").isNotNull(), F.concat(F.lit("s:"), "session_id"))
    return activity.where(
        F.col("event_type").isin(*INTERACTION_WEIGHTS) & F.col("product_id").isNotNull()
    ).select(
        "user_id",
        "product_id",
        F.coalesce(F.col("region"), F.lit("")).alias("region"),
        weight.alias("weight"),
        (F.unix_micros("occurred_at") / 1e6).alias("ts"),
        "occurred_at",
        basket.alias("basket"),
    )


def holdout_cut(events: DataFrame, fraction: float) -> float:
    """The time (epoch seconds) before which ``1 - fraction`` of the interactions happened (exact)."""
    (cut,) = events.approxQuantile("ts", [1.0 - fraction], 0.0)
    return float(cut)


def user_ratings(events: DataFrame) -> DataFrame:
    """(user_id, product_id, confidence): summed weights of signed-in shoppers."""
    from pyspark.sql import functions as F

    return (
        events.where(F.col("user_id").isNotNull())
        .groupBy("user_id", "product_id")
        .agg(F.sum("weight").alias("confidence"))
    )


def holdout_truth(train: DataFrame, test: DataFrame, max_users: int) -> DataFrame:
    """(user_id, product_id) taken in the holdout and never before, for at most ``max_users`` users
    known from training (chosen by a hash of the id, so the same users every run)."""
    from pyspark.sql import functions as F

    seen = train.where(F.col("user_id").isNotNull()).select("user_id", "product_id").distinct()
    new = (
        test.where(F.col("user_id").isNotNull())
        .select("user_id", "product_id")
        .distinct()
        .join(seen, ["user_id", "product_id"], "left_anti")
    )
    known = seen.select("user_id").distinct().join(new.select("user_id").distinct(), "user_id")
    chosen = known.orderBy(F.xxhash64("user_id"), "user_id").limit(max_users)
    return new.join(chosen, "user_id")
