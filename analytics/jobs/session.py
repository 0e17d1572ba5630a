"""A Spark session from ``spark_url``: ``local[*]``/``local[N]`` in process, or ``spark://host:port``.

The settings come from the design facts measured on these machines: 8 shuffle partitions (the default
200 costs more than the work on small inputs), loopback addresses, UTC, no UI, errors-only logs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
SHUFFLE_PARTITIONS = 8


class SparkUrlError(ValueError):
    """A spark_url that names neither a local master nor a standalone cluster."""


def check_spark_url(url: str) -> str:
    if url.startswith(("local", "spark://")):
        return url
    raise SparkUrlError(f"spark_url {url!r}: use local[*], local[N] or spark://host:port")


def spark_session(url: str, app_name: str = "emporium-analytics") -> SparkSession:
    """Start (or reuse, when one is already active in this process) a session on ``url``."""
    from pyspark.sql import SparkSession

    check_spark_url(url)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    java_opts = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
    builder = (
        SparkSession.builder.master(url)
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.executor.extraJavaOptions", java_opts)
        # The runs pass their snapshot's files one by one; listing them in a Spark job costs seconds.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1000000")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
