"""Homepage read model: what the cache holds and how a page is composed from it (pure, no I/O).

The projector keeps *ingredients* in the cache (one entry per product with its rankings, ranked lists from
analytics, recent-activity counters); a *document* per ``(region, platform)`` is composed from them by one
worker at a time and served to everyone until it is stale. Sections keep spare candidates so that the live
out-of-stock filter at request time can drop sold-out items and still fill the section.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

import msgspec

from kernel.contracts.events import Product

REGION_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"
_REGION = re.compile(REGION_PATTERN)
ALL_REGIONS: Final = ""  # analytics' and activity's "every region"


class Platform(enum.StrEnum):
    WEB = "web"
    APP = "app"


class InvalidHomepageRequest(ValueError):
    """A parameter the API answers 400 for."""


def validate_region(region: str | None) -> str:
    if not region:
        return ALL_REGIONS
    if _REGION.fullmatch(region) is None:
        raise InvalidHomepageRequest(
            "invalid region: 1 to 32 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return region


class Layout(msgspec.Struct, frozen=True):
    """How much a platform shows: items per section and how many leading categories."""

    items: int
    categories: int
    per_category: int

    @property
    def spare(self) -> int:
        """Candidates kept per section: enough that a few sell-outs still leave it full."""
        return self.items * 2


LAYOUTS: Final[Mapping[Platform, Layout]] = {
    Platform.WEB: Layout(items=12, categories=4, per_category=6),
    Platform.APP: Layout(items=8, categories=3, per_category=4),
}


class ProductCard(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True, gc=False):
    """One product as a homepage tile."""

    product_id: str
    sku: str
    title: str
    brand: str
    category: str  # "Fashion>Men>Shirts"
    price: Decimal
    list_price: Decimal | None = None
    currency: str
    rating: float | None = None
    image_url: str | None = None


class ProductEntry(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What the cache keeps per product: its tile and the scores it is ranked by."""

    card: ProductCard
    leading_category: str  # the first level of the category path: sections group by it
    discount: float  # 0..1 off the list price (0: no deal)
    first_seen: float  # epoch seconds of the first event naming it: new arrivals rank by it


def discount_of(price: Decimal, list_price: Decimal | None) -> float:
    if list_price is None or list_price <= 0 or price >= list_price:
        return 0.0
    return round(float((list_price - price) / list_price), 4)


def entry_of(product: Product, first_seen: float) -> ProductEntry:
    card = ProductCard(
        product_id=product.product_id,
        sku=product.sku,
        title=product.title,
        brand=product.brand,
        category=">".join(product.category_path),
        price=product.price,
        list_price=product.list_price,
        currency=product.currency,
        rating=product.rating,
        image_url=product.image_url,
    )
    leading = product.category_path[0] if product.category_path else ""
    return ProductEntry(
        card=card,
        leading_category=leading,
        discount=discount_of(product.price, product.list_price),
        first_seen=first_seen,
    )


class ProductChange(msgspec.Struct, frozen=True, gc=False):
    """A catalog fact at ``revision``: the product's new entry, or ``entry=None`` when it was removed."""

    product_id: str
    revision: int
    entry: ProductEntry | None


class RankedList(msgspec.Struct, frozen=True, gc=False):
    """A ranked list of product ids from analytics (trending, popular, a user's recommendations)."""

    name: str  # list_name(...)
    product_ids: tuple[str, ...]
    revision: int
    at: float  # epoch seconds the list describes (a trending window's end, a computation's time)
    region: str = ""  # the region a trending or popular list is for ("" every region, or a user's list)


class ActivityHit(msgspec.Struct, frozen=True, gc=False):
    """One storefront event's weight for one product (views < cart adds < purchases)."""

    event_id: str
    product_id: str
    region: str
    weight: float
    at: float


class StockFlag(msgspec.Struct, frozen=True):
    sku: str
    in_stock: bool
    revision: int


VIEW_WEIGHT: Final = 1.0
CART_WEIGHT: Final = 3.0
PURCHASE_WEIGHT: Final = 5.0
ACTIVITY_HOURS: Final = 6  # "recent activity": the trending fallback counts these last hours
BUCKET_S: Final = 3600


def activity_bucket(at: float) -> int:
    return int(at // BUCKET_S)


def trend_list(window: str, region: str) -> str:
    return f"trend:{window}:{region}"


def popular_list(region: str) -> str:
    return f"popular:{region}"


def recs_list(user_id: str) -> str:
    return f"recs:{user_id}"


def is_personal(list_name: str) -> bool:
    return list_name.startswith("recs:")


TRENDING_MAX_AGE_S: Final = 2 * 24 * 3600  # an older analytics list is not "trending" any more


def trending_choice(region: str) -> tuple[str, ...]:
    """The trending lists to try, best first: this region's before every region's, the hour before the day."""
    regions = (region, ALL_REGIONS) if region else (ALL_REGIONS,)
    return tuple(trend_list(window, r) for r in regions for window in ("hour", "day"))


class Rankings(msgspec.Struct, kw_only=True):
    """Ranked product ids read from the cache for one build (ids only: tiles are fetched for the winners)."""

    new: list[str]
    deals: list[str]
    rated: dict[str, list[str]]  # leading category -> best rated first, for the leading categories only
    lists: dict[str, RankedList]  # the named lists that exist
    activity: dict[str, list[str]]  # region (or ALL_REGIONS) -> most active products in the recent hours


class Section(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str  # trending, new_arrivals, deals, top_rated, recommended
    title: str
    items: list[ProductCard]
    category: str | None = None  # top_rated sections: their leading category
    source: str | None = None  # where the list came from (analytics, activity, popularity, ...)


class HomepageResponse(msgspec.Struct, kw_only=True):
    region: str
    platform: Platform
    generated_at: float  # epoch seconds of the build this page comes from
    personalised: bool
    sections: list[Section]


class Document(msgspec.Struct, kw_only=True, gc=False):
    """One built page with spare candidates per section, and its default rendering pre-encoded."""

    region: str
    platform: Platform
    generation: int  # the ingredients' generation it was built from
    built_at: float
    sections: list[Section]  # items include spares (up to Layout.spare)
    etag: str = ""
    body: bytes = b""  # the rendering when nothing shown is sold out and the page is not personalised
    parts: list[bytes] = []  # each section of ``body``, encoded: a request re-encodes only what differs
    skus: list[str] = []  # every candidate's SKU
    shown: list[str] = []  # the SKUs of the default rendering: if none is sold out, ``body`` is the answer


_encoder = msgspec.json.Encoder()  # prices as strings, as every other route answers them


def _head(document: Document, personalised: bool) -> bytes:
    """The page's JSON up to the opening bracket of ``sections`` (the last field)."""
    empty = HomepageResponse(
        region=document.region,
        platform=document.platform,
        generated_at=document.built_at,
        personalised=personalised,
        sections=[],
    )
    return _encoder.encode(empty)[: -len(b"]}")]


def assemble(document: Document, parts: Sequence[bytes], personalised: bool) -> tuple[bytes, str]:
    """The page's JSON from its encoded sections, and its weak ETag. The tag covers what the shopper sees
    (the sections, whether they are personal) but not ``generated_at``: a rebuild that changed nothing
    keeps clients' copies valid."""
    sections = b",".join(parts)
    digest = hashlib.blake2b(sections, digest_size=12)
    digest.update(f"|{document.region}|{document.platform.value}|{personalised:d}".encode())
    return b"".join((_head(document, personalised), sections, b"]}")), f'W/"{digest.hexdigest()}"'


def document_key(region: str, platform: Platform) -> str:
    return f"{region}|{platform.value}"


def _cards(
    ids: Iterable[str], products: Mapping[str, ProductEntry], sold_out: set[str], n: int
) -> list[ProductCard]:
    cards: list[ProductCard] = []
    for pid in ids:
        entry = products.get(pid)
        if entry is None or entry.card.sku in sold_out:
            continue
        cards.append(entry.card)
        if len(cards) == n:
            break
    return cards


def trending_ids(rankings: Rankings, region: str, now: float) -> tuple[list[str], str]:
    """Analytics' trending list when a fresh one exists, else the recent storefront activity."""
    for name in trending_choice(region):
        found = rankings.lists.get(name)
        if found is not None and found.product_ids and now - found.at <= TRENDING_MAX_AGE_S:
            return list(found.product_ids), "analytics"
    for r in (region, ALL_REGIONS):
        ids = rankings.activity.get(r)
        if ids:
            return ids, "activity"
    return [], "none"


def popular_ids(rankings: Rankings, region: str) -> tuple[list[str], str]:
    for r in dict.fromkeys((region, ALL_REGIONS)):
        found = rankings.lists.get(popular_list(r))
        if found is not None and found.product_ids:
            return list(found.product_ids), "popularity"
    return [], "none"


def wanted_ids(rankings: Rankings, region: str, now: float) -> set[str]:
    ids = set(rankings.new) | set(rankings.deals)
    for ranked in rankings.rated.values():
        ids.update(ranked)
    ids.update(trending_ids(rankings, region, now)[0])
    ids.update(popular_ids(rankings, region)[0])
    return ids


def compose(
    rankings: Rankings,
    products: Mapping[str, ProductEntry],
    sold_out: set[str],
    *,
    region: str,
    platform: Platform,
    generation: int,
    now: float,
) -> Document:
    """The document of one region and platform: sections in page order, sold-out items skipped."""
    layout = LAYOUTS[platform]
    spare = layout.spare
    trending, trending_source = trending_ids(rankings, region, now)
    popular, popular_source = popular_ids(rankings, region)
    if not popular:  # no popularity computed yet: what is trending is the next best guess
        popular, popular_source = trending, trending_source
    sections = [
        Section(
            id="trending",
            title="Trending now",
            items=_cards(trending, products, sold_out, spare),
            source=trending_source,
        ),
        Section(
            id="new_arrivals", title="New arrivals", items=_cards(rankings.new, products, sold_out, spare)
        ),
        Section(id="deals", title="Deals", items=_cards(rankings.deals, products, sold_out, spare)),
    ]
    for category, ranked in list(rankings.rated.items())[: layout.categories]:
        sections.append(
            Section(
                id="top_rated",
                title=f"Top rated in {category}",
                category=category,
                items=_cards(ranked, products, sold_out, 2 * layout.per_category),
            )
        )
    sections.append(
        Section(
            id="recommended",
            title="Recommended for you",
            items=_cards(popular, products, sold_out, spare),
            source=popular_source,
        )
    )
    document = Document(
        region=region, platform=platform, generation=generation, built_at=now, sections=sections
    )
    document.skus = [card.sku for section in sections for card in section.items]
    layout = LAYOUTS[platform]
    default = [_cut(section, _shown(section, layout), set()) for section in sections]
    document.shown = [card.sku for section in default for card in section.items]
    document.parts = [_encoder.encode(section) for section in default]
    document.body, document.etag = assemble(document, document.parts, False)
    return document


def _shown(section: Section, layout: Layout) -> int:
    return layout.per_category if section.id == "top_rated" else layout.items


def _cut(
    section: Section,
    n: int,
    sold_out: set[str],
    items: Sequence[ProductCard] | None = None,
    source: str | None = None,
) -> Section:
    kept = [card for card in (section.items if items is None else items) if card.sku not in sold_out][:n]
    return Section(
        id=section.id,
        title=section.title,
        items=kept,
        category=section.category,
        source=source or section.source,
    )


def render(
    document: Document, *, sold_out: set[str], personal: Sequence[ProductCard] | None
) -> tuple[bytes, str]:
    """The page a shopper sees (JSON and ETag): sold-out items dropped (spares move up), each section cut
    to the platform's size, and the recommendations replaced by the shopper's own when there are any.
    Only the sections that differ from the default rendering are encoded again."""
    layout = LAYOUTS[document.platform]
    parts: list[bytes] = []
    for section, part in zip(document.sections, document.parts, strict=True):
        n = _shown(section, layout)
        if section.id == "recommended" and personal:
            parts.append(_encoder.encode(_cut(section, n, sold_out, personal, "personal")))
        elif any(card.sku in sold_out for card in section.items[:n]):
            parts.append(_encoder.encode(_cut(section, n, sold_out)))
        else:
            parts.append(part)
    return assemble(document, parts, bool(personal))


def is_stale(
    document: Document, generation: int, now: float, *, max_age_s: float, min_rebuild_s: float
) -> bool:
    """Rebuild when too old, or when the ingredients changed and the last build is not too recent (a
    minimum interval, so a busy catalog does not turn every request into a rebuild)."""
    age = now - document.built_at
    if age >= max_age_s:
        return True
    return generation != document.generation and age >= min_rebuild_s
