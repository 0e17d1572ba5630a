"""Relevance evaluation: graded judgments, the ranking metrics and a plain Okapi BM25 baseline.

Pure code (no index, no I/O beyond reading a judgments file), so the metric math is unit-tested once
and ``emporium eval relevance`` only wires it to a catalog and the search service.
"""
