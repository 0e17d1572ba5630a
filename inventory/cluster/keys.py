"""The Redis layout of the fast path and the words its Lua scripts answer with.

Everything lives under ``<prefix>:``; ``<prefix>:ready`` names the epoch whose counters are complete,
and each epoch's keys live under ``<prefix>:<epoch>:`` (see invariant 4 in ``engine``):

* ``stock:<sku>``          hash of ``StockField`` -> integer (``limit`` -1: none)
* ``customers:<sku>``      hash customer -> units held + sold (only for SKUs with a limit)
* ``idempotency:<bucket>`` hash idempotency key -> reservation id, one per time bucket
* ``expiry``               sorted set: a hold's member (``hold_member``) -> expires_at
* ``built``                the ``run_id`` of the Redis server the epoch was built in (a restart from a
                           snapshot brings the keys back, not the holds decided since: then rebuild)

The Lua scripts in ``inventory/lua`` build the same keys and use the same words; a unit test checks
that both sides agree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

from redis.typing import EncodableT, FieldT

from inventory.domain import Reservation, Status

NO_LIMIT: Final = -1  # the ``limit`` field of a SKU without a per-customer limit


class Script(StrEnum):
    """The Lua scripts (``inventory/lua/<name>.lua``)."""

    RESERVE_BATCH = "reserve_batch"
    RESERVE_GROUP = "reserve_group"  # a checkout's lines, all or nothing (cluster/groups.py)
    STOCK_LEVELS = "stock_levels"  # several SKUs' counters in one call (a cart's availability)
    APPLY_FINAL = "apply_final"
    DUE = "due"
    STOCK_PRE = "stock_pre"
    STOCK_POST = "stock_post"


class StockField(StrEnum):
    """Fields of a ``stock:<sku>`` hash."""

    ON_HAND = "on_hand"
    HELD = "held"
    SOLD = "sold"
    LIMIT = "limit"
    REVISION = "revision"


def stock_hash(
    *, on_hand: int, held: int, sold: int, limit: int | None, revision: int
) -> dict[FieldT, EncodableT]:
    """The fields of a ``stock:<sku>`` hash."""
    return {
        StockField.ON_HAND.value: on_hand,
        StockField.HELD.value: held,
        StockField.SOLD.value: sold,
        StockField.LIMIT.value: NO_LIMIT if limit is None else limit,
        StockField.REVISION.value: revision,
    }


class ScriptAnswer(StrEnum):
    """Whole-script answers besides a result."""

    NOT_READY = "not_ready"  # this epoch's counters are not (or no longer) complete: reconcile first
    REBUILD = "rebuild"  # a per-customer limit appeared: its counts must be rebuilt from MySQL
    BELOW = "below"  # below:<held>:<sold>: the new on-hand is below what Redis has held and sold


class ReserveOutcome(StrEnum):
    """What reserve_batch.lua decided for one request: ``<outcome>[:<detail>...]``."""

    HELD = "held"  # stock taken
    SHORT = "short"  # short:<available>
    OVER_LIMIT = "over_limit"  # over_limit:<customer has>:<limit>
    UNKNOWN_SKU = "unknown_sku"
    REPEAT = "repeat"  # repeat:<reservation id>: the idempotency key was already decided
    LIMITED = "limited"  # limited:<window index, from 1>:<reset_at>: a rate-limit window is full


class HoldEnd(StrEnum):
    """How apply_final.lua ends a hold: a terminal status, or ``undo`` (it never became durable)."""

    CONFIRMED = Status.CONFIRMED.value
    RELEASED = Status.RELEASED.value
    EXPIRED = Status.EXPIRED.value
    UNDO = "undo"


class HoldEnding(NamedTuple):
    """One (member, end) pair of an apply_final call."""

    member: str
    end: HoldEnd


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ready = f"{prefix}:ready"
        self.pattern = f"{prefix}:*"

    def epoch_base(self, epoch: str) -> str:
        return f"{self.prefix}:{epoch}"

    def stock(self, epoch: str, sku: str) -> str:
        return f"{self.prefix}:{epoch}:stock:{sku}"

    def customers(self, epoch: str, sku: str) -> str:
        return f"{self.prefix}:{epoch}:customers:{sku}"

    def idempotency(self, epoch: str, bucket: int) -> str:
        return f"{self.prefix}:{epoch}:idempotency:{bucket}"

    def expiry(self, epoch: str) -> str:
        return f"{self.prefix}:{epoch}:expiry"

    def built(self, epoch: str) -> str:
        return f"{self.prefix}:{epoch}:built"

    def epoch_of(self, key: str) -> str | None:
        """The epoch of a per-epoch key (None for ``ready`` and foreign keys)."""
        epoch = key[len(self.prefix) + 1 :].split(":", 1)[0]
        return epoch if key.startswith(self.prefix + ":") and epoch.isdigit() else None


def member(reservation_id: str, sku: str, customer_id: str, quantity: int, idempotency_key: str) -> str:
    """A hold's member in the expiry index: "rid sku customer qty idempotency_key" (as reserve_batch.lua
    writes it). The member *is* the hold: removing it is what moves stock, exactly once."""
    return f"{reservation_id} {sku} {customer_id} {quantity} {idempotency_key}"


def hold_member(r: Reservation) -> str:
    return member(r.reservation_id, r.sku, r.customer_id, r.quantity, r.idempotency_key)


def reservation_id_of(member: str) -> str:
    return member.split(" ", 1)[0]
