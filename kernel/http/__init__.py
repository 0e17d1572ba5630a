"""The one HTTP style every context's routes share: Litestar controllers with dependency injection,
domain errors turned into the one error body by a table (``errors``), guards for who may call (``guards``).
"""
