"""Implicit-feedback ALS (``pyspark.ml.recommendation.ALS``, ``implicitPrefs``) per user.

Ids are indexed alphabetically (not by frequency) and the block counts and seed are fixed, so the same
input factorizes the same way on ``local[*]`` and on a cluster. Recommendations skip what the user
already took: a list of known items teaches nothing and would flatter the holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame

BLOCKS = 4


@dataclass(frozen=True)
class AlsParams:
    rank: int = 16
    iterations: int = 10
    reg: float = 0.05
    alpha: float = 10.0
    seed: int = 42

    def salt(self) -> str:
        return f"als:{self.rank}:{self.iterations}:{self.reg}:{self.alpha}:{self.seed}"


@dataclass
class Fitted:
    model: ALSModel
    users: DataFrame  # (user_id, user) : the id and its index
    items: DataFrame  # (product_id, item)


def _index(ratings: DataFrame, column: str, index: str) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ids = ratings.select(column).distinct()
    return ids.withColumn(index, (F.row_number().over(Window.orderBy(column)) - 1).cast("int"))


def fit(ratings: DataFrame, params: AlsParams) -> Fitted:
    """Fit on (user_id, product_id, confidence)."""
    from pyspark.ml.recommendation import ALS

    users = _index(ratings, "user_id", "user").cache()
    items = _index(ratings, "product_id", "item").cache()
    indexed = ratings.join(users, "user_id").join(items, "product_id").select("user", "item", "confidence")
    als = ALS(
        rank=params.rank,
        maxIter=params.iterations,
        regParam=params.reg,
        alpha=params.alpha,
        implicitPrefs=True,
        userCol="user",
        itemCol="item",
        ratingCol="confidence",
        numUserBlocks=BLOCKS,
        numItemBlocks=BLOCKS,
        seed=params.seed,
        coldStartStrategy="drop",
        nonnegative=True,
    )
    return Fitted(model=als.fit(indexed), users=users, items=items)


def recommend(fitted: Fitted, users: DataFrame | None, seen: DataFrame, k: int, extra: int = 50) -> DataFrame:
    """(user_id, rank, product_id, score): the top ``k`` unseen products for ``users`` (user_id), or for
    every user the model knows when ``users`` is None."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    model = fitted.model
    if users is None:
        raw = model.recommendForAllUsers(k + extra)
    else:
        subset = users.join(fitted.users, "user_id").select("user")
        raw = model.recommendForUserSubset(subset, k + extra)
    flat = raw.select("user", F.posexplode("recommendations").alias("pos", "rec")).select(
        "user", F.col("rec.item").alias("item"), F.round(F.col("rec.rating"), 5).alias("score")
    )
    named = (
        flat.join(fitted.users, "user").join(fitted.items, "item").select("user_id", "product_id", "score")
    )
    fresh = named.join(seen, ["user_id", "product_id"], "left_anti")
    order = Window.partitionBy("user_id").orderBy(F.desc("score"), F.asc("product_id"))
    return (
        fresh.withColumn("rank", F.row_number().over(order).cast("int"))
        .where(F.col("rank") <= k)
        .select("user_id", "rank", "product_id", "score")
    )
