"""Historical sales (``emporium analytics import-history``) into the lake's activity table."""

from analytics.history.importer import PROFILES, import_history
from analytics.history.records import FileError, ImportReport

__all__ = ["PROFILES", "FileError", "ImportReport", "import_history"]
