# ruff: noqa: E501  (SQL and ALS parameter lists read better on one line each)
"""The baselines of ``loadtest.bench_jobs``: each job's work written the shortest way an analyst would,
in plain pyspark (no snapshot, no versioning, no manifest) and in DuckDB SQL over the same Parquet.

The pyspark baselines compute the same tables as the jobs (same weights, windows, decay, support,
holdout and models), read the activity folder directly and write Parquet. DuckDB has no ALS: its
recommendations baseline is popularity plus bought-together co-occurrence only.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

W = {"view": 1.0, "cart_add": 2.0, "purchase": 4.0}


def _weight(search: float | None) -> Any:
    expr = F.when(F.col("event_type") == "search", F.lit(search))
    for kind, value in W.items():
        expr = expr.when(F.col("event_type") == kind, F.lit(value))
    return expr


def trending_min(spark: SparkSession, lake: Path, out: Path, wm: datetime) -> None:
    df = spark.read.parquet(str(lake / "activity"))
    age = (F.unix_micros(F.lit(wm)) - F.unix_micros("occurred_at")) / 1e6
    base = df.where((age >= 0) & (age < 86400)).select(
        F.when(F.col("event_type") == "search", "queries")
        .when(F.col("event_type").isin(*W), "products")
        .alias("kind"),
        F.when(F.col("event_type") == "search", F.lower(F.trim("query")))
        .otherwise(F.col("product_id"))
        .alias("key"),
        _weight(1.0).alias("w"),
        age.alias("age"),
        F.coalesce("user_id", "session_id").alias("actor"),
        F.explode(F.array_distinct(F.array(F.coalesce("region", F.lit("")), F.lit("")))).alias("region"),
    )
    base = base.where(F.col("kind").isNotNull() & F.col("key").isNotNull() & (F.col("key") != ""))
    parts = [
        base.where(F.col("age") < s)
        .withColumn("window", F.lit(n))
        .withColumn("d", F.col("w") * F.exp(-math.log(2) * F.col("age") / (s / 4)))
        for n, s in (("hour", 3600), ("day", 86400))
    ]
    agg = (
        parts[0]
        .unionByName(parts[1])
        .groupBy("kind", "window", "region", "key")
        .agg(
            F.sum("d").alias("score"),
            F.count(F.lit(1)).alias("count"),
            F.countDistinct("actor").alias("actors"),
        )
        .where((F.col("count") >= 5) & (F.col("actors") >= 3))
    )
    rank = F.row_number().over(Window.partitionBy("kind", "window", "region").orderBy(F.desc("score"), "key"))
    agg.withColumn("rank", rank).where(F.col("rank") <= 50).write.mode("overwrite").parquet(str(out))


def revenue_min(spark: SparkSession, lake: Path, out: Path) -> None:
    df = spark.read.parquet(str(lake / "activity")).where("event_type = 'purchase'")
    df.groupBy(F.to_date("occurred_at").alias("day"), "category", "brand", "region", "currency").agg(
        F.sum(F.col("unit_price") * F.col("quantity")).alias("revenue"),
        F.sum("quantity").alias("units"),
        F.countDistinct("order_id").alias("orders"),
    ).write.mode("overwrite").parquet(str(out))


def _als(ratings: Any) -> Any:
    als = ALS(rank=16, maxIter=10, regParam=0.05, alpha=10.0, implicitPrefs=True, userCol="u", itemCol="i",
              ratingCol="c", numUserBlocks=4, numItemBlocks=4, seed=42, coldStartStrategy="drop", nonnegative=True)  # fmt: skip
    return als.fit(ratings)


def _indexed(events: Any) -> Any:
    users = (
        events.select("user_id").distinct().withColumn("u", F.row_number().over(Window.orderBy("user_id")))
    )
    items = (
        events.select("product_id")
        .distinct()
        .withColumn("i", F.row_number().over(Window.orderBy("product_id")))
    )
    rated = events.groupBy("user_id", "product_id").agg(F.sum("w").alias("c"))
    return rated.join(users, "user_id").join(items, "product_id"), users, items


def _top_unseen(model: Any, users: Any, items: Any, seen: Any, k: int, subset: Any = None) -> Any:
    raw = (
        model.recommendForAllUsers(k + 50) if subset is None else model.recommendForUserSubset(subset, k + 50)
    )
    flat = raw.select("u", F.explode("recommendations").alias("r")).select(
        "u", "r.i", F.col("r.rating").alias("s")
    )
    named = flat.join(users, "u").join(items, "i").join(seen, ["user_id", "product_id"], "left_anti")
    rank = F.row_number().over(Window.partitionBy("user_id").orderBy(F.desc("s"), "product_id"))
    return named.withColumn("rank", rank).where(F.col("rank") <= k)


def _cooccurrence(events: Any) -> Any:
    basket = F.when(
        (F.col("event_type") == "purchase") & F.col("order_id").isNotNull(), F.concat(F.lit("o:"), "order_id")
    ).when(F.col("event_type").isin("cart_add", "purchase"), F.concat(F.lit("s:"), "session_id"))
    items = events.select(basket.alias("b"), "product_id").where("b is not null").distinct()
    items = items.withColumn("n", F.count(F.lit(1)).over(Window.partitionBy("b"))).where("n <= 50")
    counts = items.groupBy("product_id").agg(F.count(F.lit(1)).alias("n"))
    a, b = items.alias("a"), items.alias("b")
    pairs = a.join(b, (F.col("a.b") == F.col("b.b")) & (F.col("a.product_id") < F.col("b.product_id")))
    co = (
        pairs.groupBy(F.col("a.product_id").alias("x"), F.col("b.product_id").alias("y"))
        .count()
        .where("count >= 2")
    )
    both = co.unionByName(co.select(F.col("y").alias("x"), F.col("x").alias("y"), "count"))
    scored = (
        both.join(counts.alias("cx"), F.col("x") == F.col("cx.product_id"))
        .join(counts.alias("cy"), F.col("y") == F.col("cy.product_id"))
        .select("x", "y", (F.col("count") / F.sqrt(F.col("cx.n") * F.col("cy.n"))).alias("s"))
    )
    rank = F.row_number().over(Window.partitionBy("x").orderBy(F.desc("s"), "y"))
    return scored.withColumn("rank", rank).where("rank <= 20")


def recommendations_min(spark: SparkSession, lake: Path, out: Path, wm: datetime) -> float:
    """Holdout (newest 20%): ALS vs decayed popularity, precision@10; then ALS on everything, top 50 per
    user, popularity and co-occurrence written. Returns ALS precision@10."""
    df = spark.read.parquet(str(lake / "activity")).where(
        F.col("event_type").isin(*W) & F.col("product_id").isNotNull()
    )
    ev = df.select("user_id", "product_id", "region", "event_type", "order_id", "session_id",
                   _weight(None).alias("w"), (F.unix_micros("occurred_at") / 1e6).alias("ts")).cache()  # fmt: skip
    (cut,) = ev.approxQuantile("ts", [0.8], 0.0)
    train, test = ev.where(F.col("ts") < cut), ev.where(F.col("ts") >= cut)
    seen = train.where("user_id is not null").select("user_id", "product_id").distinct()
    truth = (
        test.where("user_id is not null")
        .select("user_id", "product_id")
        .distinct()
        .join(seen, ["user_id", "product_id"], "left_anti")
    )
    truth = truth.join(seen.select("user_id").distinct(), "user_id")
    rated, users, items = _indexed(train.where("user_id is not null"))
    model = _als(rated.select("u", "i", "c"))
    subset = truth.select("user_id").distinct().join(users, "user_id").select("u")
    recs = _top_unseen(model, users, items, seen, 10, subset)
    hits = recs.join(truth, ["user_id", "product_id"]).count()
    n_users = subset.count()
    decay = F.pow(F.lit(0.5), (F.lit(cut) - F.col("ts")) / (7 * 86400.0))
    pop = train.groupBy("product_id").agg(F.sum(F.col("w") * decay).alias("s")).orderBy(F.desc("s")).limit(60)
    pop_recs = subset.join(users, "u").crossJoin(pop).join(seen, ["user_id", "product_id"], "left_anti")
    pop_recs = pop_recs.withColumn(
        "r", F.row_number().over(Window.partitionBy("user_id").orderBy(F.desc("s")))
    ).where("r <= 10")
    pop_recs.join(truth, ["user_id", "product_id"]).count()
    _cooccurrence(train).count()  # the bought-together model judged on the holdout too
    rated_all, users_all, items_all = _indexed(ev.where("user_id is not null"))
    seen_all = ev.where("user_id is not null").select("user_id", "product_id").distinct()
    final = _top_unseen(_als(rated_all.select("u", "i", "c")), users_all, items_all, seen_all, 50)
    final.select("user_id", "rank", "product_id", "s").write.mode("overwrite").parquet(str(out / "user_recs"))
    decay_all = F.pow(F.lit(0.5), (F.lit(wm.timestamp()) - F.col("ts")) / (7 * 86400.0))
    ev.groupBy("product_id", "region").agg(F.sum(F.col("w") * decay_all).alias("s")).write.mode(
        "overwrite"
    ).parquet(str(out / "popular"))
    _cooccurrence(ev).write.mode("overwrite").parquet(str(out / "related"))
    return hits / max(1, n_users * 10)


DUCK_TRENDING = """
WITH base AS (
  SELECT CASE WHEN event_type = 'search' THEN 'queries' WHEN event_type IN ('view','cart_add','purchase') THEN 'products' END AS kind,
         CASE WHEN event_type = 'search' THEN lower(trim(query)) ELSE product_id END AS key,
         CASE event_type WHEN 'search' THEN 1.0 WHEN 'view' THEN 1.0 WHEN 'cart_add' THEN 2.0 WHEN 'purchase' THEN 4.0 END AS w,
         epoch_us(TIMESTAMPTZ '{wm}') / 1e6 - epoch_us(occurred_at) / 1e6 AS age,
         coalesce(user_id, session_id) AS actor, coalesce(region, '') AS region
  FROM read_parquet('{activity}/**/*.parquet', hive_partitioning = true)
  WHERE occurred_at <= TIMESTAMPTZ '{wm}' AND occurred_at > TIMESTAMPTZ '{wm}' - INTERVAL 1 DAY),
regions AS (SELECT * FROM base UNION ALL SELECT kind, key, w, age, actor, '' FROM base WHERE region <> ''),
win AS (SELECT *, 'hour' AS time_window, w * exp(-ln(2) * age / 900) AS d FROM regions WHERE age < 3600
        UNION ALL SELECT *, 'day', w * exp(-ln(2) * age / 21600) FROM regions),
agg AS (SELECT kind, time_window, region, key, sum(d) AS score, count(*) AS n, count(DISTINCT actor) AS actors
        FROM win WHERE kind IS NOT NULL AND key IS NOT NULL AND key <> '' GROUP BY ALL HAVING n >= 5 AND actors >= 3)
SELECT * FROM agg QUALIFY row_number() OVER (PARTITION BY kind, time_window, region ORDER BY score DESC, key) <= 50
"""

DUCK_REVENUE = """
SELECT CAST(occurred_at AS DATE) AS day, category, brand, region, currency, sum(unit_price * quantity) AS revenue,
       sum(quantity) AS units, count(DISTINCT order_id) AS orders
FROM read_parquet('{activity}/**/*.parquet', hive_partitioning = true) WHERE event_type = 'purchase' GROUP BY ALL
"""

DUCK_RECOMMENDATIONS = """
CREATE OR REPLACE TEMP TABLE ev AS SELECT user_id, product_id, coalesce(region, '') AS region, event_type, order_id, session_id,
  CASE event_type WHEN 'view' THEN 1.0 WHEN 'cart_add' THEN 2.0 ELSE 4.0 END AS w, epoch_us(occurred_at) / 1e6 AS ts
FROM read_parquet('{activity}/**/*.parquet', hive_partitioning = true)
WHERE event_type IN ('view','cart_add','purchase') AND product_id IS NOT NULL;
COPY (SELECT product_id, region, sum(w * pow(0.5, ({now} - ts) / (7 * 86400.0))) AS s FROM ev GROUP BY ALL)
  TO '{out}/popular.parquet' (FORMAT parquet);
CREATE OR REPLACE TEMP TABLE items AS SELECT DISTINCT CASE WHEN event_type = 'purchase' AND order_id IS NOT NULL
  THEN 'o:' || order_id ELSE 's:' || session_id END AS b, product_id FROM ev WHERE event_type IN ('cart_add','purchase');
CREATE OR REPLACE TEMP TABLE small AS SELECT * FROM items QUALIFY count(*) OVER (PARTITION BY b) <= 50;
COPY (
  WITH n AS (SELECT product_id, count(*) AS n FROM small GROUP BY 1),
  co AS (SELECT a.product_id AS x, b.product_id AS y, count(*) AS c FROM small a JOIN small b ON a.b = b.b AND a.product_id < b.product_id
         GROUP BY 1, 2 HAVING c >= 2),
  both_ways AS (SELECT x, y, c FROM co UNION ALL SELECT y, x, c FROM co)
  SELECT x, y, c / sqrt(nx.n * ny.n) AS s FROM both_ways JOIN n nx ON nx.product_id = x JOIN n ny ON ny.product_id = y
  QUALIFY row_number() OVER (PARTITION BY x ORDER BY s DESC, y) <= 20) TO '{out}/related.parquet' (FORMAT parquet);
"""


def duckdb_job(job: str, lake: Path, out: Path, wm: datetime) -> None:
    import duckdb

    activity = lake / "activity"
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if job == "trending":
            sql = DUCK_TRENDING.format(wm=wm.isoformat(), activity=activity)
            con.execute(f"COPY ({sql}) TO '{out}/trending.parquet' (FORMAT parquet)")
        elif job == "revenue":
            con.execute(
                f"COPY ({DUCK_REVENUE.format(activity=activity)}) TO '{out}/revenue.parquet' (FORMAT parquet)"
            )
        else:
            con.execute(DUCK_RECOMMENDATIONS.format(activity=activity, out=out, now=wm.timestamp()))
    finally:
        con.close()
