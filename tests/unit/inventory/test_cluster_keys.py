"""The Redis layout and result words of inventory.cluster.keys are the ones the Lua scripts use."""

from __future__ import annotations

import re
from importlib import resources

from inventory.cluster.keys import HoldEnd, Keys, ReserveOutcome, Script, ScriptAnswer, StockField

LUA = {
    script: resources.files("inventory.lua").joinpath(f"{script.value}.lua").read_text() for script in Script
}
ALL_LUA = "\n".join(LUA.values())


def quoted(source: str) -> set[str]:
    return set(re.findall(r"'([^'\n]*)'", source))


def test_key_segments_match_the_scripts() -> None:
    keys = Keys("p")
    segments = {
        keys.stock("7", "S").removeprefix("p:7:").removesuffix("S"),
        keys.customers("7", "S").removeprefix("p:7:").removesuffix("S"),
        keys.idempotency("7", 3).removeprefix("p:7:").removesuffix("3"),
        keys.expiry("7").removeprefix("p:7:"),
    }
    assert segments == {"stock:", "customers:", "idempotency:", "expiry"}
    assert segments <= quoted(ALL_LUA)
    assert keys.ready == "p:ready" and "':ready'" in ALL_LUA
    assert keys.epoch_of("p:7:stock:S") == "7" and keys.epoch_of("p:ready") is None


def test_stock_fields_match_the_scripts() -> None:
    fields = {f.value for f in StockField}
    for script in (Script.RESERVE_BATCH, Script.APPLY_FINAL, Script.STOCK_PRE, Script.STOCK_POST):
        hash_fields = {w for w in quoted(LUA[script]) if re.fullmatch(r"[a-z_]+", w)}
        written = hash_fields & (fields | {"oh", "h", "so", "lim", "rev"})
        assert written <= fields, script


def test_result_words_match_the_scripts() -> None:
    words = quoted(LUA[Script.RESERVE_BATCH])
    assert {ReserveOutcome.HELD.value, ReserveOutcome.UNKNOWN_SKU.value} <= words
    for prefixed in (
        ReserveOutcome.SHORT,
        ReserveOutcome.OVER_LIMIT,
        ReserveOutcome.REPEAT,
        ReserveOutcome.LIMITED,
    ):
        assert f"{prefixed.value}:" in words
    for script, source in LUA.items():
        assert f"'{ScriptAnswer.NOT_READY.value}'" in source, script
    for script in (Script.STOCK_PRE, Script.STOCK_POST):
        assert f"'{ScriptAnswer.REBUILD.value}'" in LUA[script]
    assert {HoldEnd.CONFIRMED.value, HoldEnd.UNDO.value} <= quoted(LUA[Script.APPLY_FINAL])
