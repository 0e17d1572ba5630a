"""Inventory: stock per SKU, reservations that never oversell, holds that expire, stock events.

Layout (ports and adapters):

* ``domain``   - pure rules (stock arithmetic, reservation lifecycle, per-customer limit, events)
* ``port``     - the ``ReservationEngine`` protocol
* ``sqlite``   - embedded adapter: SQLite, conditional updates, group commit (default)
* ``cluster/`` - Redis fast path (Lua, micro-batched) + MySQL truth (group commit), reconcile;
                 ``cluster/engine.py`` states the crash-consistency invariants
* ``schema``   - the tables of both adapters, migrated by ``kernel.migrations``
* ``events``   - transactional outbox relay (stock events out) and the supplier-feed consumer (stock in)
* ``api``      - Litestar routes under /v1/reservations and /v1/stock
* ``module``   - wiring into the app; ``cli`` - ``emporium inventory migrate|reconcile|stock|set-stock``

Warehouses: reservations draw from a SKU's pooled stock; a supplier feed's per-warehouse quantities
are summed into on-hand and kept as a breakdown (``warehouses`` in GET /v1/stock).
"""
