"""Load deterministic demo data: customers with realistic purchase rhythms, carts, consents, NPS,
and the points and tiers the loyalty rules give them.

Rows are built in Python from one seeded ``random.Random`` and written set-based with
``bulk_create``; the purchase stats are then recomputed by the customers service in batches.
Recording purchases one by one through ``purchase_record`` would give the same result but takes
minutes for the default size, and ``make run`` calls this on every start (with --if-empty).
Every time is an offset from the moment of seeding, so the same seed gives the same data shape.
"""

import datetime as dt
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Exists, Model, OuterRef, Subquery
from django.utils import timezone

from customers.models import (
    Cart,
    CartItem,
    CartStatus,
    Channel,
    Consent,
    ConsentEvent,
    ConsentSource,
    Customer,
    NpsResponse,
    Product,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
)
from customers.services import LineItemInput, PurchaseInput, customer_stats_refresh
from customers.services.loyalty import points_earn_for_purchases
from customers.services.loyalty.daily import tiers_recompute_all

CUSTOMER_PREFIX = "demo-"
PURCHASE_PREFIX = "demo-o-"
CART_PREFIX = "demo-cart-"
BATCH_SIZE = 5_000  # rows per INSERT
CHUNK_CUSTOMERS = 5_000  # customers generated and written together, so memory stays bounded
STATS_BATCH = 1_000  # customer ids per stats refresh UPDATE
LAPSED_AFTER_DAYS = 180  # a lapsed customer's last purchase is at least this old

# Share of customers per behaviour. Rhythms are mean days between purchases (jittered per order).
SEGMENTS = {
    "loyal": 0.14,  # every 20-60 days since sign-up, still buying
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
NPS_RATE = 0.22  # buyers who answered the NPS survey once
NPS_SCORE_WEIGHTS = (2, 1, 1, 2, 2, 3, 4, 9, 14, 28, 34)  # scores 0..10
CONSENT_RATES = {Channel.EMAIL: 0.82, Channel.SMS: 0.35, Channel.PUSH: 0.25}
UNSUBSCRIBED_RATE = 0.04  # granted on import, later revoked through the unsubscribe link
BIRTH_DATE_RATE = 0.75
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


@dataclass
class SeedSummary:
    customers: int = 0
    purchases: int = 0
    purchase_items: int = 0
    carts: int = 0
    open_carts: int = 0
    nps_responses: int = 0
    products: int = 0
    points_entries: int = 0
    seconds: float = 0.0


@dataclass
class _ChunkRows:
    """The rows of one chunk of customers, in the order they must be inserted."""

    customers: list[Customer] = field(default_factory=list)
    referrals: list[tuple[int, int]] = field(default_factory=list)  # (chunk position, referrer index)
    consents: list[Consent] = field(default_factory=list)
    consent_events: list[ConsentEvent] = field(default_factory=list)
    carts: list[tuple[Cart, list[LineItemInput]]] = field(default_factory=list)
    purchases: list[tuple[Purchase, PurchaseInput]] = field(default_factory=list)
    nps: list[NpsResponse] = field(default_factory=list)


def demo_catalogue() -> list[DemoProduct]:
    return [
        DemoProduct(f"{prefix}-{n:03d}", name, category, Decimal(price), days)
        for category, prefix, products in CATALOGUE
        for n, (name, price, days) in enumerate(products, start=1)
    ]


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
        "loyal": (rng.uniform(20, 60), 0.25, rng.uniform(0, 7), 10_000),
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


def _basket(rng: random.Random, catalogue: list[DemoProduct], favourites: list[DemoProduct]) -> list[LineItemInput]:
    """1-4 distinct products, mostly from the customer's favourite category."""
    size = rng.choices((1, 2, 3, 4), weights=(50, 30, 15, 5))[0]
    chosen: dict[str, DemoProduct] = {}
    while len(chosen) < size:
        product = rng.choice(favourites) if rng.random() < 0.7 else rng.choice(catalogue)
        chosen[product.sku] = product
    return [
        LineItemInput(
            sku=p.sku,
            name=p.name,
            category=p.category,
            quantity=rng.choices((1, 2, 3), weights=(80, 15, 5))[0],
            unit_price=p.unit_price,
        )
        for p in chosen.values()
    ]


def _line_fields(line: LineItemInput) -> dict[str, Any]:
    return {
        "sku": line.sku,
        "name": line.name,
        "category": line.category,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
    }


def _analyze(*models: type[Model]) -> None:
    """Refresh the planner's statistics: the tables were empty a moment ago, and with stale
    statistics PostgreSQL scans every purchase for each customer in the stats refresh."""
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


class DemoSeeder:
    """Builds and writes the demo rows; one instance per run, driven by one seeded generator."""

    def __init__(self, *, seed: int, years: int, now: dt.datetime) -> None:
        self.rng = random.Random(seed)
        self.history_days = years * 365
        self.now = now
        self.currency = settings.STORE_CURRENCY
        self.store_timezone = settings.TIME_ZONE
        self.catalogue = demo_catalogue()
        self.by_category: dict[str, list[DemoProduct]] = {}
        for product in self.catalogue:
            self.by_category.setdefault(product.category, []).append(product)
        self.customer_ids: list[int] = []  # by customer index, for referrals
        self.purchase_seq = 0
        self.cart_seq = 0
        self.summary = SeedSummary()

    def at(self, age_days: float) -> dt.datetime:
        """The moment ``age_days`` before now, to the second."""
        return self.now - dt.timedelta(seconds=int(age_days * 86_400))

    def run(self, customer_count: int) -> SeedSummary:
        started = time.monotonic()
        products_before = Product.objects.count()
        Product.objects.bulk_create(
            [
                Product(sku=p.sku, name=p.name, category=p.category, replenishment_days=p.replenishment_days)
                for p in self.catalogue
            ],
            ignore_conflicts=True,
        )
        self.summary.products = Product.objects.count() - products_before
        profiles = _profiles(self.rng, customer_count, self.history_days)
        for start in range(0, len(profiles), CHUNK_CUSTOMERS):
            self._write_chunk(self._build_chunk(profiles[start : start + CHUNK_CUSTOMERS], start))
        _analyze(Customer, Purchase, Cart)
        for offset in range(0, len(self.customer_ids), STATS_BATCH):
            customer_stats_refresh(customer_ids=self.customer_ids[offset : offset + STATS_BATCH])
        self._carts_convert()
        self._loyalty()
        self.summary.customers = len(profiles)
        self.summary.seconds = time.monotonic() - started
        return self.summary

    # --- building rows -----------------------------------------------------------------------

    def _build_chunk(self, profiles: list[Profile], first_index: int) -> _ChunkRows:
        rows = _ChunkRows()
        for position, profile in enumerate(profiles):
            index = first_index + position
            customer = self._customer(index, profile)
            rows.customers.append(customer)
            if index > 0 and self.rng.random() < REFERRAL_RATE:
                rows.referrals.append((position, self.rng.randrange(index)))
                customer.attributes["acquisition"] = "referral"
            self._consents(rows, customer)
            self._orders(rows, customer, profile)
        return rows

    def _customer(self, index: int, profile: Profile) -> Customer:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        number = index + 1
        tags = []
        if profile.segment == "loyal" and rng.random() < 0.3:
            tags.append("vip")
        if rng.random() < 0.1:
            tags.append("wholesale" if rng.random() < 0.3 else "newsletter")
        return Customer(
            external_id=f"{CUSTOMER_PREFIX}{number:06d}",
            email=f"{first}.{last}.{number}@example.com".lower() if rng.random() < 0.97 else "",
            phone=f"+1555{number:07d}" if rng.random() < 0.65 else "",
            first_name=first,
            last_name=last,
            birth_date=_birth_date(rng),
            timezone=rng.choice(OTHER_TIMEZONES) if rng.random() < OTHER_TIMEZONE_RATE else self.store_timezone,
            tags=tags,
            attributes={"acquisition": rng.choice(ACQUISITION), "favourite_category": rng.choice(CATALOGUE)[0]},
            created_at=self.at(profile.signup_age_days),
        )

    def _consents(self, rows: _ChunkRows, customer: Customer) -> None:
        rng = self.rng
        for channel, rate in CONSENT_RATES.items():
            if (channel == Channel.EMAIL and not customer.email) or (channel == Channel.SMS and not customer.phone):
                continue
            if rng.random() >= rate:
                continue
            granted_at = customer.created_at
            rows.consent_events.append(
                ConsentEvent(
                    customer=customer,
                    channel=channel,
                    granted=True,
                    source=ConsentSource.IMPORT,
                    recorded_at=granted_at,
                )
            )
            if rng.random() < UNSUBSCRIBED_RATE:
                revoked_at = granted_at + (self.now - granted_at) * rng.random()
                rows.consent_events.append(
                    ConsentEvent(
                        customer=customer,
                        channel=channel,
                        granted=False,
                        source=ConsentSource.UNSUBSCRIBE_LINK,
                        recorded_at=revoked_at,
                    )
                )
                consent = Consent(
                    customer=customer,
                    channel=channel,
                    granted=False,
                    source=ConsentSource.UNSUBSCRIBE_LINK,
                    updated_at=revoked_at,
                )
            else:
                consent = Consent(
                    customer=customer, channel=channel, granted=True, source=ConsentSource.IMPORT, updated_at=granted_at
                )
            rows.consents.append(consent)

    def _orders(self, rows: _ChunkRows, customer: Customer, profile: Profile) -> None:
        """Purchases (some through a named cart), an NPS answer, and perhaps a cart in progress."""
        rng = self.rng
        favourites = self.by_category[customer.attributes["favourite_category"]]
        completed_at: list[dt.datetime] = []
        for age in _purchase_ages(rng, profile):
            placed_at = self.at(age)
            lines = _basket(rng, self.catalogue, favourites)
            roll = rng.random()
            status = (
                PurchaseStatus.REFUNDED
                if roll < REFUND_RATE
                else PurchaseStatus.CANCELLED
                if roll < REFUND_RATE + CANCEL_RATE
                else PurchaseStatus.COMPLETED
            )
            cart = None
            if status == PurchaseStatus.COMPLETED and age <= CART_LINK_DAYS and rng.random() < CART_LINK_RATE:
                updated_at = placed_at - dt.timedelta(minutes=rng.randint(3, 120))
                cart = self._cart(rows, customer, lines, updated_at)
            self.purchase_seq += 1
            data = PurchaseInput(
                external_id=f"{PURCHASE_PREFIX}{self.purchase_seq:07d}",
                customer=customer.external_id,
                placed_at=placed_at,
                total=sum((line.unit_price * line.quantity for line in lines), Decimal("0.00")),
                currency=self.currency,
                status=status,
                items=tuple(lines),
                cart_id=cart.external_id if cart else "",
            )
            purchase = Purchase(
                external_id=data.external_id,
                customer=customer,
                placed_at=placed_at,
                total=data.total,
                currency=data.currency,
                status=status,
                cart=cart,
                cart_external_id=data.cart_id,
                content_digest=data.digest(),  # the same content sent to the API later is a repeat
                status_changed_at=(
                    None
                    if status == PurchaseStatus.COMPLETED
                    else min(self.now, placed_at + dt.timedelta(days=rng.uniform(1, 14)))
                ),
            )
            rows.purchases.append((purchase, lines))
            if status == PurchaseStatus.COMPLETED:
                completed_at.append(placed_at)

        if completed_at and rng.random() < NPS_RATE:
            answered_at = rng.choice(completed_at) + dt.timedelta(days=rng.uniform(2, 10))
            if answered_at < self.now:
                score = rng.choices(range(11), weights=NPS_SCORE_WEIGHTS)[0]
                band = "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
                comment = rng.choice(NPS_COMMENTS[band]) if rng.random() < 0.5 else ""
                rows.nps.append(NpsResponse(customer=customer, score=score, comment=comment, answered_at=answered_at))

        if rng.random() < OPEN_CART_RATE:
            # Mostly hours to days old: fresh ones are still being filled, older ones count as
            # abandoned, and those followed by a purchase are converted after the load.
            age = min(rng.expovariate(1 / 3), profile.signup_age_days)
            self._cart(rows, customer, _basket(rng, self.catalogue, favourites), self.at(age))
            self.summary.open_carts += 1

    def _cart(self, rows: _ChunkRows, customer: Customer, lines: list[LineItemInput], updated_at: dt.datetime) -> Cart:
        self.cart_seq += 1
        created_at = max(customer.created_at, updated_at - dt.timedelta(hours=self.rng.uniform(0, 48)))
        cart = Cart(
            external_id=f"{CART_PREFIX}{self.cart_seq:06d}",
            customer=customer,
            status=CartStatus.OPEN,
            created_at=min(created_at, updated_at),
            updated_at=updated_at,
        )
        rows.carts.append((cart, lines))
        return cart

    # --- writing rows --------------------------------------------------------------------------

    def _write_chunk(self, rows: _ChunkRows) -> None:
        Customer.objects.bulk_create(rows.customers, batch_size=BATCH_SIZE)
        self.customer_ids.extend(customer.pk for customer in rows.customers)
        if rows.referrals:
            referred = []
            for position, referrer_index in rows.referrals:
                customer = rows.customers[position]
                customer.referred_by_id = self.customer_ids[referrer_index]
                referred.append(customer)
            Customer.objects.bulk_update(referred, ["referred_by"], batch_size=BATCH_SIZE)
        Consent.objects.bulk_create(rows.consents, batch_size=BATCH_SIZE)
        ConsentEvent.objects.bulk_create(rows.consent_events, batch_size=BATCH_SIZE)

        Cart.objects.bulk_create([cart for cart, _ in rows.carts], batch_size=BATCH_SIZE)
        CartItem.objects.bulk_create(
            [CartItem(cart=cart, **_line_fields(line)) for cart, lines in rows.carts for line in lines],
            batch_size=BATCH_SIZE,
        )
        Purchase.objects.bulk_create([purchase for purchase, _ in rows.purchases], batch_size=BATCH_SIZE)
        items = [
            PurchaseItem(purchase=purchase, **_line_fields(line))
            for purchase, lines in rows.purchases
            for line in lines
        ]
        PurchaseItem.objects.bulk_create(items, batch_size=BATCH_SIZE)
        NpsResponse.objects.bulk_create(rows.nps, batch_size=BATCH_SIZE)

        self.summary.carts += len(rows.carts)
        self.summary.purchases += len(rows.purchases)
        self.summary.purchase_items += len(items)
        self.summary.nps_responses += len(rows.nps)

    def _loyalty(self) -> None:
        """The loyalty state the rules leave, through the loyalty services: each customer in the
        tier of their trailing spend (the nightly recompute), then the points of every completed
        purchase still inside its expiry (earned at that tier; older ones earn none)."""
        tiers_recompute_all(now=self.now)
        completed = Purchase.objects.filter(customer_id__in=self.customer_ids, status=PurchaseStatus.COMPLETED)
        purchase_ids = list(completed.order_by("pk").values_list("pk", flat=True))
        for offset in range(0, len(purchase_ids), STATS_BATCH):
            batch = purchase_ids[offset : offset + STATS_BATCH]
            with transaction.atomic():
                self.summary.points_entries += len(points_earn_for_purchases(purchase_ids=batch, now=self.now))

    def _carts_convert(self) -> None:
        """SPEC §2: a completed purchase by the customer after a cart's last update converts it.

        One UPDATE over the demo carts; the conversion time is that first later purchase.
        """
        later = Purchase.objects.filter(
            customer=OuterRef("customer"), status=PurchaseStatus.COMPLETED, placed_at__gt=OuterRef("updated_at")
        )
        Cart.objects.filter(
            Exists(later),
            external_id__startswith=CART_PREFIX,
            status__in=[CartStatus.OPEN, CartStatus.ABANDONED],
        ).update(
            status=CartStatus.CONVERTED,
            converted_at=Subquery(later.order_by("placed_at").values("placed_at")[:1]),
        )
        self.summary.open_carts = Cart.objects.filter(
            external_id__startswith=CART_PREFIX, status=CartStatus.OPEN
        ).count()


def demo_seed(*, seed: int, customers: int, years: int, now: dt.datetime | None = None) -> SeedSummary:
    """Write the demo data set in one transaction; the same seed gives the same rows."""
    now = (now or timezone.now()).replace(microsecond=0)
    with transaction.atomic():
        return DemoSeeder(seed=seed, years=years, now=now).run(customers)


class Command(BaseCommand):
    help = "Load deterministic demo data: customers, purchases, carts, consents, NPS answers, products."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument("--customers", type=int, default=2000, help="number of customers (default 2000)")
        parser.add_argument("--years", type=int, default=2, help="length of the purchase history (default 2)")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when any customer exists (for `make run`)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1.")
        if options["years"] < 1:
            raise CommandError("--years must be at least 1.")
        if options["if_empty"] and Customer.objects.exists():
            self.stdout.write("seed_demo: customers already exist; nothing to do (--if-empty).")
            return
        existing = Customer.objects.filter(external_id__startswith=CUSTOMER_PREFIX).count()
        if existing:
            raise CommandError(
                f"{existing} demo customers ({CUSTOMER_PREFIX}...) already exist. "
                "Use --if-empty to skip seeding when data exists, or start from a fresh database."
            )
        summary = demo_seed(seed=options["seed"], customers=options["customers"], years=options["years"])
        self.stdout.write(
            self.style.SUCCESS(
                f"seed_demo: {summary.customers} customers, {summary.purchases} purchases "
                f"({summary.purchase_items} items), {summary.carts} carts ({summary.open_carts} open), "
                f"{summary.nps_responses} NPS answers, {summary.products} new products, "
                f"{summary.points_entries} points earnings "
                f"in {summary.seconds:.1f}s (seed {options['seed']})."
            )
        )
