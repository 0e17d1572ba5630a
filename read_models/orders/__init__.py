"""The orders read model: ``OrderPlaced`` events -> one row per order, read by order id and by customer
(newest first, cursor paging). Store port in ``port``; SQLite and MySQL adapters in ``sql``."""

from read_models.orders.port import Order, OrderLine, OrdersPage, OrdersStore, OrdersStoreError

__all__ = ["Order", "OrderLine", "OrdersPage", "OrdersStore", "OrdersStoreError"]
