"""The Spark jobs: trending, revenue and recommendations over the activity lake.

``session`` builds the Spark session, ``lake`` snapshots and reads the input, ``outputs`` writes versioned
tables atomically, one module per job computes, ``publish`` turns durable outputs into result events and
``runner`` ties them together for ``emporium analytics run``.
"""
