"""Elasticsearch adapter of the search-index port (``http(s)://HOST:PORT``).

``mapping``: settings, analyzers, mappings and the indexed body of a document; ``queries``: a port
query as a search request; ``index``: ``ElasticsearchSearchIndex`` (lifecycle, alias swap, writes).
"""

from search.elasticsearch.index import ElasticsearchSearchIndex

__all__ = ["ElasticsearchSearchIndex"]
