from __future__ import annotations

from pathlib import Path

import pytest

from kernel.contracts.events import DeliveryZoneUpdated, ZoneWarehouse, new_event
from search.delivery_zones import DeliveryZones, UnknownZone, default_zones_file
from search.projectors import ZoneProjection


def test_shipped_zones_file_loads() -> None:
    zones = DeliveryZones.from_file()
    assert default_zones_file().is_file()
    assert "BLR" in zones.zones
    assert zones.warehouses("blr") == ("wh-east", "wh-south")
    assert zones.eta_hours("BLR", ["wh-east", "wh-south"]) == 24
    assert zones.eta_hours("BLR", ["wh-north"]) is None


def test_unknown_zone_lists_known_ones() -> None:
    zones = DeliveryZones({"A": [ZoneWarehouse(warehouse_id="W1", eta_hours=4)]})
    with pytest.raises(UnknownZone) as caught:
        zones.warehouses("B")
    assert caught.value.known == ["A"]


def test_malformed_file_fails_loudly(tmp_path: Path) -> None:
    bad = tmp_path / "zones.json"
    bad.write_text('{"zones": {"A": [{"warehouse_id": 1}]}}')
    with pytest.raises(ValueError, match="cannot load delivery zones"):
        DeliveryZones.from_file(bad)


async def test_zone_events_replace_zone_newest_revision_wins() -> None:
    zones = DeliveryZones.from_file()
    projection = ZoneProjection(zones)

    def event(zone: str, eta: int, revision: int):
        payload = DeliveryZoneUpdated(
            zone=zone, warehouses=(ZoneWarehouse(warehouse_id="WH-X", eta_hours=eta),)
        )
        return new_event(payload, key=zone, revision=revision, producer="test")

    await projection.handle([event("BLR", 6, 2), event("BLR", 9, 1), event("NEW", 12, 1)])
    assert zones.warehouses("BLR") == ("WH-X",)
    assert zones.eta_hours("BLR", ["WH-X"]) == 6
    assert zones.eta_hours("NEW", ["WH-X"]) == 12
