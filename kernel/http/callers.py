"""Who is calling: the owner of the request's ``X-Api-Key`` (a supplier, a storefront), or an anonymous
client known by its address.

The app hands one ``Identify`` callable to every route through its ``opt`` (``identify_opt``); the first
of the rate limiter and a route's guard that asks identifies the request, and the answer is kept in the
ASGI scope for the other. The owner is found by whatever the callable does (the key's kind and owner
come from the store of the context that issues keys); this module knows no context.

``client_address`` is the peer address, or, when the peer is one of the configured trusted proxies, the
right-most ``X-Forwarded-For`` address that is not a trusted proxy (the one the nearest untrusted hop
gave: anything left of it can be forged by the client).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.types import Scope

from kernel.http.guards import API_KEY_HEADER

IDENTIFY_OPT = "identify"
SUPPLIER = "supplier"  # the kinds of callers with keys
STOREFRONT = "storefront"
_API_KEY = API_KEY_HEADER.lower().encode()
_FORWARDED_FOR = b"x-forwarded-for"
_STATE_KEY = "kernel.http.caller"
_UNKNOWN_ADDRESS = "unknown"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Caller(NamedTuple):
    """The verified owner of a key: its kind (``supplier``, ``storefront``) and its id."""

    kind: str
    id: str


class KeyedRequest(NamedTuple):
    """What identification found: the key sent (None without one) and its owner (None if wrong)."""

    key: str | None
    caller: Caller | None


Identify = Callable[[str], Awaitable[Caller | None]]
"""A key -> its owner, or None for a key that is not valid. Must be cheap: it runs per request."""


def identify_opt(identify: Identify) -> dict[str, Any]:
    return {IDENTIFY_OPT: identify}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def keyed_request(scope: Scope, opt: Mapping[str, Any]) -> KeyedRequest:
    """The request's key and its owner, found once per request (kept in the scope's state)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found: KeyedRequest | None = state.get(_STATE_KEY)
    if found is not None:
        return found
    key = _header(scope, _API_KEY)
    identify: Identify | None = opt.get(IDENTIFY_OPT)
    caller = await identify(key) if key and identify is not None else None
    found = state[_STATE_KEY] = KeyedRequest(key, caller)
    return found


def request_caller(scope: Scope) -> Caller:
    """The caller a guard of this route has let through (``key_of_kind``)."""
    found: KeyedRequest | None = scope.get("state", {}).get(_STATE_KEY)
    if found is None or found.caller is None:
        raise RuntimeError("no identified caller: the route needs a key_of_kind guard")
    return found.caller


def key_of_kind(
    kind: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard letting through only keys of ``kind``: 401 without a key or with a wrong one, 403 with a
    valid key of another kind."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        found = await keyed_request(connection.scope, handler.opt)
        if found.caller is None:
            raise NotAuthorizedException(
                detail=f"invalid API key (this route needs a {kind} key)"
                if found.key
                else f"missing {API_KEY_HEADER} header (a {kind} key)",
                headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
            )
        if found.caller.kind != kind:
            raise PermissionDeniedException(
                detail=f"a {found.caller.kind} key cannot call this route: it needs a {kind} key"
            )

    guard.__name__ = f"{kind}_key_only"
    return guard


def parse_networks(text: str | Iterable[str]) -> tuple[IpNetwork, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks (a bare address is a /32 or /128)."""
    items = text.split(",") if isinstance(text, str) else text
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _in(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(scope: Scope, trusted_proxies: tuple[IpNetwork, ...] = ()) -> str:
    client = scope.get("client")
    peer = client[0] if client else _UNKNOWN_ADDRESS
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    forwarded = _header(scope, _FORWARDED_FOR)
    if not forwarded:
        return peer
    for hop in reversed([part.strip() for part in forwarded.split(",")]):
        if not _in(hop, trusted_proxies):
            return hop if hop else peer
    return peer  # every hop is a trusted proxy: the request came from inside
