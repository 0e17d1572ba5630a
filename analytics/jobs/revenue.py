"""Revenue from confirmed sales (purchase rows), by day, category, brand, region and currency.

Currency is part of the key: amounts in two currencies are never added up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.schema import PURCHASE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REVENUE_SALT = "revenue:v1"


def revenue(activity: DataFrame) -> DataFrame:
    """Columns: day, category, brand, region, currency, revenue (decimal), units, orders."""
    from pyspark.sql import functions as F

    sales = activity.where(
        (F.col("event_type") == PURCHASE) & F.col("unit_price").isNotNull() & F.col("quantity").isNotNull()
    )
    return (
        sales.select(
            F.to_date("occurred_at").alias("day"),
            F.coalesce(F.col("category"), F.lit("")).alias("category"),
            F.coalesce(F.col("brand"), F.lit("")).alias("brand"),
            F.coalesce(F.col("region"), F.lit("")).alias("region"),
            F.coalesce(F.col("currency"), F.lit("")).alias("currency"),
            (F.col("unit_price") * F.col("quantity")).alias("amount"),
            F.col("quantity"),
            F.col("order_id"),
        )
        .groupBy("day", "category", "brand", "region", "currency")
        .agg(
            F.sum("amount").cast("decimal(22,2)").alias("revenue"),
            F.sum("quantity").cast("long").alias("units"),
            F.countDistinct("order_id").alias("orders"),
        )
    )
