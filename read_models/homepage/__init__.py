"""The homepage read model: cache port and adapters, projector, request path with single-flight
rebuilds, route and feature module. See ``model.py`` for what is cached and ``service.py`` for how a page
is served."""

from read_models.homepage.model import Platform
from read_models.homepage.port import HomepageCache, SoldOut

__all__ = ["HomepageCache", "Platform", "SoldOut"]
