"""Search API unit tests share the in-memory index fake kept with the read-model unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "read_models"))
