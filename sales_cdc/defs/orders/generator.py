"""Realistic orders and their life cycle, as pure functions of a seeded random source."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # Faker is imported by the generator's run only (see assets.py)
    from faker import Faker

CENT = Decimal("0.01")

# (productId, productName, category, unitPrice)
PRODUCTS: tuple[tuple[str, str, str, str], ...] = (
    ("P-1001", "Wireless Mouse", "Electronics", "24.99"),
    ("P-1002", "Mechanical Keyboard", "Electronics", "89.90"),
    ("P-1003", "27in 4K Monitor", "Electronics", "329.00"),
    ("P-1004", "USB-C Hub", "Electronics", "39.50"),
    ("P-1005", "Noise Cancelling Headphones", "Electronics", "199.99"),
    ("P-2001", "Espresso Machine", "Home & Kitchen", "249.00"),
    ("P-2002", "Chef's Knife", "Home & Kitchen", "59.95"),
    ("P-2003", "Cast Iron Skillet", "Home & Kitchen", "34.90"),
    ("P-2004", "Air Fryer", "Home & Kitchen", "119.00"),
    ("P-3001", "Running Shoes", "Sports", "129.95"),
    ("P-3002", "Yoga Mat", "Sports", "29.99"),
    ("P-3003", "Adjustable Dumbbells", "Sports", "219.00"),
    ("P-3004", "Cycling Helmet", "Sports", "74.50"),
    ("P-4001", "Data Engineering Handbook", "Books", "45.00"),
    ("P-4002", "Streaming Systems", "Books", "52.99"),
    ("P-4003", "Designing Data-Intensive Apps", "Books", "48.75"),
    ("P-5001", "Organic Green Tea", "Grocery", "8.49"),
    ("P-5002", "Dark Roast Coffee Beans", "Grocery", "16.90"),
    ("P-5003", "Extra Virgin Olive Oil", "Grocery", "12.35"),
    ("P-6001", "Linen Shirt", "Fashion", "54.00"),
    ("P-6002", "Leather Wallet", "Fashion", "39.00"),
    ("P-6003", "Rain Jacket", "Fashion", "99.90"),
)
PAYMENT_METHODS = ("CARD", "PAYPAL", "APPLE_PAY", "BANK_TRANSFER", "GIFT_CARD")
CHANNELS = ("WEB", "MOBILE_APP", "MARKETPLACE", "STORE")
# Prices are list prices in the currency of the buyer's store (no currency with no minor unit).
CURRENCIES = {"US": "USD", "GB": "GBP", "CA": "CAD"}
DISCOUNT_RATES = (Decimal("0.05"), Decimal("0.10"), Decimal("0.15"))

STATUSES = ("PLACED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED")
# The valid next statuses of each status; CANCELLED and RETURNED are final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "PLACED": ("PAID", "CANCELLED"),
    "PAID": ("SHIPPED", "CANCELLED"),
    "SHIPPED": ("DELIVERED",),
    "DELIVERED": ("RETURNED",),
    "CANCELLED": (),
    "RETURNED": (),
}
# How often each branch is taken when there is a choice (the happy path dominates).
TRANSITION_WEIGHTS = {"PAID": 9, "SHIPPED": 9, "CANCELLED": 1, "DELIVERED": 1, "RETURNED": 1}


def utc_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds, as stored in createdAt / updatedAt."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_order(fake: Faker, rng: random.Random, now: datetime) -> dict[str, Any]:
    """One freshly PLACED order; money is exact Decimal, never float."""
    product_id, product_name, category, price = rng.choice(PRODUCTS)
    quantity = rng.choices((1, 2, 3, 4, 5), weights=(50, 25, 12, 8, 5))[0]
    unit_price = Decimal(price)
    gross = unit_price * quantity
    country = rng.choice(("US", "US", "US", "GB", "CA", "DE", "FR", "ES", "IE", "NL"))
    order: dict[str, Any] = {
        "orderId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customerId": f"C-{rng.randint(10000, 99999)}",
        "customerName": fake.name(),
        "customerCity": fake.city(),
        "customerCountry": country,
        "productId": product_id,
        "productName": product_name,
        "category": category,
        "quantity": quantity,
        "unitPrice": unit_price,
        "currency": CURRENCIES.get(country, "EUR"),
        "paymentMethod": rng.choice(PAYMENT_METHODS),
        "channel": rng.choice(CHANNELS),
        "status": "PLACED",
        "createdAt": utc_timestamp(now),
        "updatedAt": utc_timestamp(now),
        "version": 1,
    }
    discount = Decimal(0)
    if rng.random() < 0.3:
        discount = (gross * rng.choice(DISCOUNT_RATES)).quantize(CENT, ROUND_HALF_UP)
        order["discount"] = discount
    order["totalAmount"] = (gross - discount).quantize(CENT, ROUND_HALF_UP)
    return order


def next_status(status: str, rng: random.Random) -> str | None:
    """A valid next status, or None when the order is final."""
    options = TRANSITIONS.get(status, ())
    if not options:
        return None
    return rng.choices(options, weights=[TRANSITION_WEIGHTS[o] for o in options])[0]


ChangeKind = Literal["insert", "update", "delete"]


@dataclass
class Change:
    """One planned write: the item to put, or the status update / delete of an existing order."""

    kind: ChangeKind
    order_id: str
    expected_version: int | None = None
    item: dict[str, Any] = field(default_factory=dict)
    new_status: str | None = None


@dataclass(frozen=True)
class Mix:
    """How many of each change one generator run makes."""

    new_orders: int
    status_updates: int
    deletes: int


def plan_changes(
    mix: Mix, existing: list[dict[str, Any]], rng: random.Random, fake: Faker, now: datetime
) -> list[Change]:
    """New orders, valid status transitions of live orders, and deletes, each order touched once."""
    changes = [
        Change("insert", order["orderId"], item=order)
        for order in (new_order(fake, rng, now) for _ in range(mix.new_orders))
    ]
    pool = sorted(existing, key=lambda o: o["orderId"])
    rng.shuffle(pool)
    movable = [o for o in pool if TRANSITIONS.get(str(o.get("status")), ())]
    touched: set[str] = set()
    for order in movable[: mix.status_updates]:
        status = next_status(str(order["status"]), rng)
        if status:
            changes.append(
                Change("update", order["orderId"], int(order["version"]), new_status=status)
            )
            touched.add(order["orderId"])
    deletable = [o for o in pool if o["orderId"] not in touched]
    for order in deletable[: mix.deletes]:
        changes.append(Change("delete", order["orderId"], int(order["version"])))
    return changes


# Hours an order typically waits in a status before its next step (placed orders are paid soon).
STEP_HOURS = {
    "PLACED": (0.1, 2.0),
    "PAID": (4.0, 30.0),
    "SHIPPED": (24.0, 72.0),
    "DELIVERED": (48.0, 240.0),
}
HISTORY_DELETE_RATE = 0.03


def plan_history(
    days: int, orders_per_day: int, rng: random.Random, fake: Faker, now: datetime
) -> list[Change]:
    """A recent past for an empty table: orders created over the last `days` days (today included).

    Each order is placed at a random moment of its day, then moved along its life cycle as far as
    the time since then allows (older orders are further along; some are cancelled or returned),
    and a few are deleted. Every step is its own write with its own updatedAt, in time order per
    order, so the whole history flows through the stream like live changes.
    """
    changes: list[Change] = []
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        span = min(timedelta(days=1), now - day).total_seconds()
        count = orders_per_day if back else max(1, round(orders_per_day * span / 86_400))
        for _ in range(count):
            placed = day + timedelta(seconds=rng.uniform(0, span))
            order = new_order(fake, rng, placed)
            changes.append(Change("insert", order["orderId"], item=order))
            status, version, moment = "PLACED", 1, placed
            while True:
                low, high = STEP_HOURS.get(status, (0.0, 0.0))
                moment = moment + timedelta(hours=rng.uniform(low, high))
                nxt = next_status(status, rng)
                if nxt is None or moment >= now:
                    break
                changes.append(
                    Change(
                        "update",
                        order["orderId"],
                        version,
                        item={"updatedAt": utc_timestamp(moment)},
                        new_status=nxt,
                    )
                )
                status, version = nxt, version + 1
            if rng.random() < HISTORY_DELETE_RATE:
                changes.append(Change("delete", order["orderId"], version))
    return changes
