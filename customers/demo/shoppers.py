"""Demo shoppers: a catalogue, customers with realistic purchase rhythms, their consents and carts,
and the plan of their orders and NPS answers.

Everything is drawn from one seeded ``random.Random``; every time is an offset from the moment
of seeding, so the same seed gives the same data shape. Customers, consents (with their
history), carts and the catalogue are written here set-based, with COPY: they carry backdated
sign-up and consent times, and the services that write them one at a time (``customer_upsert``,
``consent_set``, ``cart_upsert``) would take a few thousand round trips. Orders and answers are
only planned here: ``history`` records them through the purchase and NPS services, so stats,
carts, loyalty and attribution follow the product's own rules.
"""

import datetime as dt
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models

from customers.models import (
    Cart,
    CartItem,
    CartStatus,
    Channel,
    Consent,
    ConsentEvent,
    ConsentSource,
    Customer,
    Product,
    PurchaseStatus,
)

CUSTOMER_PREFIX = "demo-"
PURCHASE_PREFIX = "demo-o-"
CART_PREFIX = "demo-cart-"
CHUNK_CUSTOMERS = 5_000  # customers built and written together, so the rows in memory stay bounded
LAPSED_AFTER_DAYS = 180  # a lapsed customer's last purchase is at least this old

# Share of customers per behaviour. Rhythms are mean days between purchases (jittered per order).
SEGMENTS = {
    "loyal": 0.14,  # every 25-70 days since sign-up, still buying
    "occasional": 0.24,  # every 90-220 days
    "one_timer": 0.26,
    "lapsed": 0.16,  # bought a few times, then stopped long ago
    "new_signup": 0.08,  # signed up in the last two weeks, no purchase yet
    "never_bought": 0.12,  # an account, never an order
}
REFUND_RATE = 0.03
CANCEL_RATE = 0.02
CART_LINK_RATE = 0.35  # recent purchases that went through a cart the shop told us about
CART_LINK_DAYS = 90
OPEN_CART_RATE = 0.12  # customers with a cart in progress (some old enough to count as abandoned)
HISTORY_CART_RATE = 0.35  # customers who left a cart during the campaign history (the reminders' audience)
NPS_RATE = 0.05  # recent buyers who answered the shop's own NPS survey once, outside any campaign
NPS_RECENT_DAYS = 150  # that survey ran for the last few months: answers fill the trend's windows
NPS_SCORE_WEIGHTS = (2, 1, 1, 2, 2, 3, 4, 9, 14, 28, 34)  # scores 0..10
CONSENT_RATES = {Channel.EMAIL: 0.9, Channel.SMS: 0.35, Channel.PUSH: 0.25}
UNSUBSCRIBED_RATE = 0.04  # granted on import, later revoked through the unsubscribe link
BIRTH_DATE_RATE = 0.9
LEAP_DAY_RATE = 0.01  # over-represented on purpose, so the 29 February rule has cases to show
OTHER_TIMEZONES = (
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
OTHER_TIMEZONE_RATE = 0.15
REFERRAL_RATE = 0.04

FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Elif", "Felix", "Grace", "Hugo", "Ida", "Jun", "Kira", "Leo")
LAST_NAMES = ("Adams", "Becker", "Costa", "Dubois", "Evans", "Garcia", "Hansen", "Ito", "Novak", "Rossi", "Weber")
ACQUISITION = ("organic", "instagram", "google_ads", "newsletter", "marketplace")
NPS_COMMENTS = {
    "detractor": ("Delivery took far too long.", "The product arrived damaged.", "Support never answered."),
    "passive": ("Fine, nothing special.", "Good products, shipping is pricey.", ""),
    "promoter": ("Love the quality!", "Fast delivery, will order again.", "Great service.", ""),
}

# (category, sku prefix, [(name, unit price, replenishment days or None), ...])
CATALOGUE: tuple[tuple[str, str, tuple[tuple[str, str, int | None], ...]], ...] = (
    (
        "coffee",
        "COF",
        (
            ("House blend beans 1 kg", "24.90", 30),
            ("Espresso beans 500 g", "14.50", 21),
            ("Decaf beans 500 g", "13.90", 30),
            ("Pour-over filter papers", "6.50", 60),
            ("Burr grinder", "89.00", None),
        ),
    ),
    (
        "tea",
        "TEA",
        (
            ("Earl grey 250 g", "9.90", 45),
            ("Sencha green tea 100 g", "12.40", 45),
            ("Rooibos 250 g", "8.70", 45),
            ("Chai spice blend", "11.20", 40),
            ("Glass teapot", "34.00", None),
        ),
    ),
    (
        "pet",
        "PET",
        (
            ("Dry dog food 12 kg", "54.99", 30),
            ("Cat food, 24 cans", "27.60", 21),
            ("Cat litter 10 l", "12.99", 28),
            ("Dog chew sticks", "7.49", 14),
            ("Pet bed, medium", "45.00", None),
        ),
    ),
    (
        "skincare",
        "SKN",
        (
            ("Daily moisturiser 50 ml", "19.95", 45),
            ("Sunscreen SPF 50", "16.50", 60),
            ("Cleansing gel 200 ml", "11.90", 50),
            ("Night serum 30 ml", "29.00", 60),
            ("Lip balm", "4.50", None),
        ),
    ),
    (
        "vitamins",
        "VIT",
        (
            ("Vitamin D3, 90 capsules", "9.99", 90),
            ("Magnesium, 120 tablets", "14.99", 60),
            ("Omega-3, 60 capsules", "18.49", 60),
            ("Multivitamin, 30 tablets", "12.99", 30),
            ("Pill organiser", "6.99", None),
        ),
    ),
    (
        "apparel",
        "APP",
        (
            ("Organic cotton T-shirt", "24.00", None),
            ("Merino socks, 3 pairs", "19.00", None),
            ("Hoodie", "59.00", None),
            ("Rain jacket", "129.00", None),
            ("Beanie", "22.00", None),
        ),
    ),
    (
        "home",
        "HOM",
        (
            ("Scented candle", "18.00", None),
            ("Linen tea towels, 2", "16.00", None),
            ("Ceramic mug", "12.50", None),
            ("Bamboo cutting board", "27.00", None),
            ("Glass storage jars, set of 3", "32.00", None),
        ),
    ),
    (
        "books",
        "BKS",
        (
            ("Home barista handbook", "22.00", None),
            ("Plant-based weeknights", "26.00", None),
            ("Daily journal", "14.00", None),
            ("Wall calendar", "15.00", None),
            ("Gift card 50", "50.00", None),
        ),
    ),
)


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    category: str
    unit_price: Decimal
    replenishment_days: int | None


@dataclass(frozen=True)
class Profile:
    """One customer's behaviour, drawn before any row is built."""

    segment: str
    signup_age_days: float  # how long before now they signed up


@dataclass(frozen=True)
class PlannedPurchase:
    """An order as the shop's backend reports it (the SPEC §6 purchase shape), due at ``placed_at``."""

    placed_at: dt.datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class PlannedAnswer:
    """An NPS answer, given through the NPS service at ``answered_at``."""

    answered_at: dt.datetime
    customer: str
    score: int
    comment: str


Line = dict[str, Any]  # one purchase or cart item in the API shape: sku, name, category, quantity, unit_price


Row = dict[str, Any]  # a row by the model's attribute names (``customer_id``, not ``customer``)


@dataclass
class _ChunkRows:
    """The rows of one chunk of customers, in the order they must be written."""

    customers: list[Row] = field(default_factory=list)
    consents: list[Row] = field(default_factory=list)
    consent_events: list[Row] = field(default_factory=list)
    carts: list[tuple[Row, list[Line]]] = field(default_factory=list)


def ids_reserve(model: type[models.Model], count: int) -> list[int]:
    """``count`` new primary keys from the table's own sequence, so rows can name each other
    before they are written (COPY returns nothing)."""
    if not count:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def rows_copy(model: type[models.Model], rows: Iterable[Row]) -> int:
    """Write rows with one COPY. A column a row leaves out gets the field's default, as
    ``bulk_create`` would give it (``auto_now`` fields: the moment of writing); generated
    columns, and the primary key unless the rows name it, are the database's."""
    rows = list(rows)
    if not rows:
        return 0
    given = set().union(*(row.keys() for row in rows))
    fields = [
        f
        for f in model._meta.concrete_fields
        if not getattr(f, "generated", False) and not (f.primary_key and f.attname not in given)
    ]
    defaults: dict[str, Any] = {}
    for f in fields:
        if f.attname in given:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults[f.attname] = dt.datetime.now(dt.UTC)
        elif f.has_default():
            defaults[f.attname] = f.get_default()
        elif f.null:
            defaults[f.attname] = None
        else:
            raise ValueError(f"{model.__name__}.{f.name} needs a value")
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    names = [f.attname for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] if name in row else defaults[name] for name in names]
            copy.write_row(
                [json.dumps(value) if name in json_fields else value for name, value in zip(names, values, strict=True)]
            )
    return len(rows)


def demo_catalogue() -> list[DemoProduct]:
    return [
        DemoProduct(f"{prefix}-{n:03d}", name, category, Decimal(price), days)
        for category, prefix, products in CATALOGUE
        for n, (name, price, days) in enumerate(products, start=1)
    ]


def nps_answer_draw(rng: random.Random) -> tuple[int, str]:
    """A score with the demo's distribution (mostly promoters) and, half the time, a comment."""
    score = rng.choices(range(11), weights=NPS_SCORE_WEIGHTS)[0]
    band = "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
    return score, rng.choice(NPS_COMMENTS[band]) if rng.random() < 0.5 else ""


def _profiles(rng: random.Random, count: int, history_days: int) -> list[Profile]:
    """Behaviours and sign-up ages, oldest sign-up first so ids grow with sign-up time."""
    names, weights = list(SEGMENTS), list(SEGMENTS.values())
    profiles = []
    for segment in rng.choices(names, weights=weights, k=count):
        if segment == "new_signup":
            age = rng.uniform(0.05, 14)
        elif segment == "loyal":
            age = rng.uniform(min(150, history_days / 2), history_days)
        elif segment == "occasional":
            age = rng.uniform(min(60, history_days / 4), history_days)
        elif segment == "lapsed":
            age = rng.uniform(min(LAPSED_AFTER_DAYS + 60, history_days), history_days)
        else:
            age = rng.uniform(0.05, history_days)
        profiles.append(Profile(segment, age))
    profiles.sort(key=lambda p: -p.signup_age_days)
    return profiles


def _purchase_ages(rng: random.Random, profile: Profile) -> list[float]:
    """Ages in days (before now) of one customer's orders, oldest first."""
    age = profile.signup_age_days
    if profile.segment in ("new_signup", "never_bought"):
        return []
    if profile.segment == "one_timer":
        return [max(0.01, age - rng.uniform(0, min(5, age)))]
    rhythm, jitter, first_delay, limit = {
        "loyal": (rng.uniform(25, 70), 0.25, rng.uniform(0, 7), 10_000),
        "occasional": (rng.uniform(90, 220), 0.35, rng.uniform(0, 30), 10_000),
        "lapsed": (rng.uniform(25, 90), 0.3, rng.uniform(0, 14), rng.randint(2, 7)),
    }[profile.segment]
    floor = LAPSED_AFTER_DAYS if profile.segment == "lapsed" else 0.01
    ages: list[float] = []
    next_age = age - first_delay
    while next_age > floor and len(ages) < limit:
        ages.append(next_age)
        next_age -= max(3.0, rng.gauss(rhythm, rhythm * jitter))
    if not ages:  # a late sign-up of a repeat segment still bought once
        ages.append(max(0.01, age - rng.uniform(0, min(2, age))))
    return ages


def _birth_date(rng: random.Random) -> dt.date | None:
    if rng.random() >= BIRTH_DATE_RATE:
        return None
    if rng.random() < LEAP_DAY_RATE:
        return dt.date(rng.choice((1960, 1972, 1980, 1988, 1992, 1996, 2000, 2004)), 2, 29)
    year = rng.randint(1955, 2006)
    return dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))


def _line_fields(line: Line) -> dict[str, Any]:
    return {key: line[key] for key in ("sku", "name", "category", "quantity", "unit_price")}


class Shoppers:
    """Builds and writes the shop's customers; holds the plan of their orders and answers.

    ``history`` records the plan and asks for more orders (the campaigns' responses) through
    ``order`` and ``basket``, so every order id and basket comes from one place.
    """

    def __init__(self, *, rng: random.Random, now: dt.datetime, years: int, campaign_days: int) -> None:
        self.rng = rng
        self.now = now
        self.order_days = years * 365
        self.campaign_start = now - dt.timedelta(days=campaign_days)  # the campaign history starts here
        self.currency = settings.STORE_CURRENCY
        self.store_timezone = settings.TIME_ZONE
        self.catalogue = demo_catalogue()
        self.by_category: dict[str, list[DemoProduct]] = {}
        for product in self.catalogue:
            self.by_category.setdefault(product.category, []).append(product)
        self.customer_ids: list[int] = []  # by customer index, for referrals
        self.favourites: dict[str, str] = {}  # customer external id -> favourite category
        self.cart_lines: dict[int, tuple[str, list[Line]]] = {}  # cart id -> (external id, items)
        self.purchases: list[PlannedPurchase] = []
        self.answers: list[PlannedAnswer] = []
        self.purchase_seq = 0
        self.cart_seq = 0
        self.counts = {"customers": 0, "consents": 0, "carts": 0, "products": 0}

    def at(self, age_days: float) -> dt.datetime:
        """The moment ``age_days`` before now, to the second."""
        return self.now - dt.timedelta(seconds=int(age_days * 86_400))

    # --- what history asks for -------------------------------------------------------------------

    def basket(self, customer: str) -> list[Line]:
        """1-4 distinct products, mostly from the customer's favourite category."""
        rng = self.rng
        favourites = self.by_category[self.favourites[customer]]
        size = rng.choices((1, 2, 3, 4), weights=(50, 30, 15, 5))[0]
        chosen: dict[str, DemoProduct] = {}
        while len(chosen) < size:
            product = rng.choice(favourites) if rng.random() < 0.7 else rng.choice(self.catalogue)
            chosen[product.sku] = product
        return [
            {
                "sku": p.sku,
                "name": p.name,
                "category": p.category,
                "quantity": rng.choices((1, 2, 3), weights=(80, 15, 5))[0],
                "unit_price": p.unit_price,
            }
            for p in chosen.values()
        ]

    def order(
        self,
        *,
        customer: str,
        placed_at: dt.datetime,
        lines: list[Line],
        status: str = PurchaseStatus.COMPLETED,
        cart: str = "",
    ) -> PlannedPurchase:
        self.purchase_seq += 1
        data: dict[str, Any] = {
            "external_id": f"{PURCHASE_PREFIX}{self.purchase_seq:07d}",
            "customer": customer,
            "placed_at": placed_at,
            "total": sum((line["unit_price"] * line["quantity"] for line in lines), Decimal("0.00")),
            "currency": self.currency,
            "status": status,
            "items": lines,
        }
        if cart:
            data["cart_id"] = cart
        return PlannedPurchase(placed_at, data)

    # --- building and writing ----------------------------------------------------------------------

    def write(self, customer_count: int) -> None:
        """Write the catalogue, the customers, their consents and carts; plan their orders and answers."""
        products_before = Product.objects.count()
        Product.objects.bulk_create(
            [
                Product(sku=p.sku, name=p.name, category=p.category, replenishment_days=p.replenishment_days)
                for p in self.catalogue
            ],
            ignore_conflicts=True,
        )
        self.counts["products"] = Product.objects.count() - products_before
        profiles = _profiles(self.rng, customer_count, self.order_days)
        for start in range(0, len(profiles), CHUNK_CUSTOMERS):
            self._write_chunk(self._build_chunk(profiles[start : start + CHUNK_CUSTOMERS], start))
        self.counts["customers"] = len(profiles)
        self.purchases.sort(key=lambda planned: (planned.placed_at, planned.data["external_id"]))
        self.answers.sort(key=lambda answer: (answer.answered_at, answer.customer))

    def _build_chunk(self, profiles: list[Profile], first_index: int) -> _ChunkRows:
        rows = _ChunkRows()
        ids = ids_reserve(Customer, len(profiles))
        self.customer_ids.extend(ids)
        for position, profile in enumerate(profiles):
            index = first_index + position
            customer = self._customer(index, profile)
            customer["id"] = ids[position]
            rows.customers.append(customer)
            if index > 0 and self.rng.random() < REFERRAL_RATE:
                customer["referred_by_id"] = self.customer_ids[self.rng.randrange(index)]
                customer["attributes"]["acquisition"] = "referral"
            self.favourites[customer["external_id"]] = customer["attributes"]["favourite_category"]
            self._consents(rows, customer)
            self._orders(rows, customer, profile)
        return rows

    def _customer(self, index: int, profile: Profile) -> Row:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        number = index + 1
        tags = []
        if profile.segment == "loyal" and rng.random() < 0.3:
            tags.append("vip")
        if rng.random() < 0.1:
            tags.append("wholesale" if rng.random() < 0.3 else "newsletter")
        created_at = self.at(profile.signup_age_days)
        return {
            "external_id": f"{CUSTOMER_PREFIX}{number:06d}",
            "email": f"{first}.{last}.{number}@example.com".lower() if rng.random() < 0.97 else "",
            "phone": f"+1555{number:07d}" if rng.random() < 0.65 else "",
            "first_name": first,
            "last_name": last,
            "birth_date": _birth_date(rng),
            "timezone": rng.choice(OTHER_TIMEZONES) if rng.random() < OTHER_TIMEZONE_RATE else self.store_timezone,
            "tags": tags,
            "attributes": {"acquisition": rng.choice(ACQUISITION), "favourite_category": rng.choice(CATALOGUE)[0]},
            "referred_by_id": None,
            "created_at": created_at,
            "updated_at": created_at,
        }

    def _consents(self, rows: _ChunkRows, customer: Row) -> None:
        rng = self.rng
        for channel, rate in CONSENT_RATES.items():
            if (channel == Channel.EMAIL and not customer["email"]) or (
                channel == Channel.SMS and not customer["phone"]
            ):
                continue
            if rng.random() >= rate:
                continue
            granted_at = customer["created_at"]
            event = {"customer_id": customer["id"], "channel": channel}
            rows.consent_events.append(
                {**event, "granted": True, "source": ConsentSource.IMPORT, "recorded_at": granted_at}
            )
            if rng.random() < UNSUBSCRIBED_RATE:
                # Revoked before the campaign history where the sign-up allows it: consent is read
                # as it stands now, so a later revocation would hide the customer from earlier runs.
                until = self.campaign_start if granted_at < self.campaign_start else self.now
                revoked_at = granted_at + (until - granted_at) * rng.random()
                source = ConsentSource.UNSUBSCRIBE_LINK
                rows.consent_events.append({**event, "granted": False, "source": source, "recorded_at": revoked_at})
                rows.consents.append({**event, "granted": False, "source": source, "updated_at": revoked_at})
            else:
                rows.consents.append(
                    {**event, "granted": True, "source": ConsentSource.IMPORT, "updated_at": granted_at}
                )

    def _orders(self, rows: _ChunkRows, customer: Row, profile: Profile) -> None:
        """Orders (some through a named cart), an NPS answer, carts in progress and carts left
        during the campaign history."""
        rng = self.rng
        external_id = customer["external_id"]
        completed_at: list[dt.datetime] = []
        for age in _purchase_ages(rng, profile):
            placed_at = self.at(age)
            lines = self.basket(external_id)
            roll = rng.random()
            status = (
                PurchaseStatus.REFUNDED
                if roll < REFUND_RATE
                else PurchaseStatus.CANCELLED
                if roll < REFUND_RATE + CANCEL_RATE
                else PurchaseStatus.COMPLETED
            )
            cart = ""
            if status == PurchaseStatus.COMPLETED and age <= CART_LINK_DAYS and rng.random() < CART_LINK_RATE:
                updated_at = placed_at - dt.timedelta(minutes=rng.randint(3, 120))
                cart = self._cart(rows, customer, lines, updated_at)
            self.purchases.append(
                self.order(customer=external_id, placed_at=placed_at, lines=lines, status=status, cart=cart)
            )
            if status == PurchaseStatus.COMPLETED:
                completed_at.append(placed_at)

        recent = [at for at in completed_at if at >= self.now - dt.timedelta(days=NPS_RECENT_DAYS)]
        if recent and rng.random() < NPS_RATE:
            answered_at = rng.choice(recent) + dt.timedelta(days=rng.uniform(2, 10))
            if answered_at < self.now:
                score, comment = nps_answer_draw(rng)
                self.answers.append(PlannedAnswer(answered_at, external_id, score, comment))

        if rng.random() < OPEN_CART_RATE:
            # Mostly hours to days old: fresh ones are still being filled, older ones count as
            # abandoned, and those followed by a purchase are converted when it is recorded.
            age = min(rng.expovariate(1 / 3), profile.signup_age_days)
            self._cart(rows, customer, self.basket(external_id), self.at(age))
        signed_up = max(customer["created_at"], self.campaign_start) + dt.timedelta(hours=1)
        if signed_up < self.now - dt.timedelta(hours=2) and rng.random() < HISTORY_CART_RATE:
            updated_at = signed_up + (self.now - dt.timedelta(hours=2) - signed_up) * rng.random()
            self._cart(rows, customer, self.basket(external_id), updated_at.replace(microsecond=0))

    def _cart(self, rows: _ChunkRows, customer: Row, lines: list[Line], updated_at: dt.datetime) -> str:
        self.cart_seq += 1
        created_at = max(customer["created_at"], updated_at - dt.timedelta(hours=self.rng.uniform(0, 48)))
        cart = {
            "external_id": f"{CART_PREFIX}{self.cart_seq:06d}",
            "customer_id": customer["id"],
            "status": CartStatus.OPEN,
            "created_at": min(created_at, updated_at),
            "updated_at": updated_at,
            "converted_at": None,
        }
        rows.carts.append((cart, lines))
        return cart["external_id"]

    def _write_chunk(self, rows: _ChunkRows) -> None:
        rows_copy(Customer, rows.customers)
        rows_copy(Consent, rows.consents)
        rows_copy(ConsentEvent, rows.consent_events)
        # Carts are written open, all at once: one dated after the present step of the replay is
        # invisible to the abandoned-cart trigger until then, and purchases convert them as recorded.
        for (cart_row, _), pk in zip(rows.carts, ids_reserve(Cart, len(rows.carts)), strict=True):
            cart_row["id"] = pk
        rows_copy(Cart, [cart for cart, _ in rows.carts])
        rows_copy(
            CartItem, [{"cart_id": cart["id"], **_line_fields(line)} for cart, lines in rows.carts for line in lines]
        )
        for cart, lines in rows.carts:
            self.cart_lines[cart["id"]] = (cart["external_id"], lines)
        self.counts["consents"] += len(rows.consents)
        self.counts["carts"] += len(rows.carts)
