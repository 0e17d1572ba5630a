"""Delivery-zones read model: which warehouses can ship to a zone, and how fast.

Loaded from ``search/data/zones.json`` at start and updated by ``DeliveryZoneUpdated`` events (the event
with the newest revision per zone wins; the file counts as revision 0). Tiny, so every serving process keeps
its own copy in memory and follows the logistics topic itself (see ``ZoneFollower`` in the projector module).

The search API turns ``deliver_to=ZONE`` into a warehouse filter on the index and gives each hit the best
ETA among the warehouses that hold it and serve the zone. An unknown zone is a client error (400 listing
the known zones) rather than an empty page: a typo in a zone code should not look like "nothing ships".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

from kernel.contracts.events import ZoneWarehouse


def default_zones_file() -> Path:
    return Path(__file__).resolve().parent / "data" / "zones.json"


class _ZonesFile(msgspec.Struct):
    zones: dict[str, list[ZoneWarehouse]]


class UnknownZone(LookupError):
    def __init__(self, zone: str, known: Sequence[str]) -> None:
        super().__init__(zone)
        self.zone = zone
        self.known = list(known)


class DeliveryZones:
    """zone -> {warehouse_id: eta_hours}. Pure in-memory state; loading and following live elsewhere."""

    def __init__(self, zones: Mapping[str, Iterable[ZoneWarehouse]] | None = None) -> None:
        self._zones: dict[str, dict[str, int]] = {}
        self._revisions: dict[str, int] = {}
        for zone, warehouses in (zones or {}).items():
            self.update(zone, warehouses, revision=0)

    @classmethod
    def from_file(cls, path: Path | None = None) -> DeliveryZones:
        """Read the zones file; a malformed file fails loudly at start rather than filtering wrongly."""
        path = path or default_zones_file()
        try:
            parsed = msgspec.json.decode(path.read_bytes(), type=_ZonesFile)
        except (OSError, msgspec.DecodeError) as exc:
            raise ValueError(f"cannot load delivery zones from {path}: {exc}") from exc
        return cls(parsed.zones)

    def update(self, zone: str, warehouses: Iterable[ZoneWarehouse], *, revision: int) -> bool:
        """Replace a zone's warehouses unless a newer revision is already applied. Returns True if applied."""
        zone = zone.strip().upper()
        if self._revisions.get(zone, -1) >= revision and zone in self._zones:
            return False
        table: dict[str, int] = {}
        for wh in warehouses:
            best = table.get(wh.warehouse_id)
            table[wh.warehouse_id] = wh.eta_hours if best is None else min(best, wh.eta_hours)
        self._zones[zone] = table
        self._revisions[zone] = revision
        return True

    @property
    def zones(self) -> list[str]:
        return sorted(self._zones)

    def warehouses(self, zone: str) -> tuple[str, ...]:
        """Warehouses serving ``zone``; raises UnknownZone."""
        table = self._zones.get(zone.strip().upper())
        if table is None:
            raise UnknownZone(zone, self.zones)
        return tuple(sorted(table))

    def eta_hours(self, zone: str, warehouses: Iterable[str]) -> int | None:
        """The best ETA to ``zone`` among ``warehouses``, or None if none of them serves it."""
        table = self._zones.get(zone.strip().upper(), {})
        etas = [table[w] for w in warehouses if w in table]
        return min(etas) if etas else None
