"""Region ids, as the analytics jobs name them in result events and storefronts ask for them.

``""`` means every region (the lists computed over all activity); a named region is a shopper's
delivery region (``deliver_to`` or ``X-Region`` on activity events).
"""

from __future__ import annotations

import re
from typing import Final

MAX_REGION_LENGTH: Final = 64
REGION_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._:-]*"
_REGION = re.compile(REGION_PATTERN)
REGION_RULE: Final = (
    f"empty (every region) or 1 to {MAX_REGION_LENGTH} characters: letters, digits and . _ : - "
    "(starting with a letter or digit)"
)


class InvalidRegion(ValueError):
    """A region outside ``REGION_RULE``; the API answers 400 with this message."""


def is_valid_region(region: str) -> bool:
    return region == "" or (len(region) <= MAX_REGION_LENGTH and _REGION.fullmatch(region) is not None)


def validate_region(region: str) -> str:
    if not is_valid_region(region):
        raise InvalidRegion(f"invalid region: {REGION_RULE}")
    return region
