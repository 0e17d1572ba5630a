"""The one HTTP style every context's routes share: Litestar controllers with dependency injection,
domain errors turned into the one error body by a table (``errors``), guards for who may call (``guards``,
``callers``: admin token, a key of the owner in the path, a key of one kind) and rate limits per route
group and caller (``limits``, ``limits_redis``).
"""
