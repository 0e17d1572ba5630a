"""Where ``JsonBytes`` lived before ``kernel.http.hot_path``; kept only for ``search/api.py``'s import
until the search page-reuse middleware is gone (delete this module then)."""

from kernel.http.hot_path import JsonBytes

__all__ = ["JsonBytes"]
