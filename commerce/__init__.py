"""Commerce: carts, wishlists and checkouts (the shopper's writes between search and an order).

A context of its own (docs/adr/0007-commerce-context.md): it keeps its own prices from catalog events,
asks the inventory for stock holds through a port the composition root fills, and publishes orders
and purchases through its outbox.
"""
