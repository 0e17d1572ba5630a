"""Tantivy adapter of the search-index port: the embedded default (``tantivy:///PATH``).

Behaviour matches the Elasticsearch adapter; the modules, by concern:

* ``schema`` and ``documents``: fields, analyzer, how a ``SearchDocument`` is indexed and stored;
* ``engine`` and ``directory``: one physical index, and the pointer swapped by rebuilds (the alias);
* ``writes``: versioned upserts, deletes and stock flags, committed or staged;
* ``queries``: text query (fuzziness, synonyms, phrase boost) and filters;
* ``paging``: exact total orders, offsets and cursors;
* ``facets``: aggregations or counts over the fetched matches;
* ``reads``: one search end to end; ``suggest``: autocomplete;
* ``index``: ``TantivySearchIndex``, the async port over all of them.
"""

from search.tantivy.index import TantivySearchIndex
from search.tantivy.schema import fold, product_hash

__all__ = ["TantivySearchIndex", "fold", "product_hash"]
