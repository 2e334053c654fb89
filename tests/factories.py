"""factory_boy factories for the models. Writes with business rules go through services in tests;
factories are for arranging state quickly."""

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from customers.models import (
    Cart,
    CartItem,
    Consent,
    Customer,
    NpsResponse,
    Product,
    Purchase,
    PurchaseItem,
)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n:06d}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    created_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=400))


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    customer = factory.SubFactory(CustomerFactory)
    channel = "email"
    granted = True
    source = "api"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Faker("word")
    category = "general"


class PurchaseFactory(factory.django.DjangoModelFactory):
    """A raw purchase row. Stats are not refreshed: use purchase_record for that."""

    class Meta:
        model = Purchase

    external_id = factory.Sequence(lambda n: f"order-{n:07d}")
    customer = factory.SubFactory(CustomerFactory)
    placed_at = factory.LazyFunction(timezone.now)
    total = Decimal("50.00")
    currency = "USD"
    status = "completed"
    content_digest = "factory"


class PurchaseItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PurchaseItem

    purchase = factory.SubFactory(PurchaseFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = "Item"
    quantity = 1
    unit_price = Decimal("50.00")


class CartFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cart

    external_id = factory.Sequence(lambda n: f"cart-{n:06d}")
    customer = factory.SubFactory(CustomerFactory)


class CartItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CartItem

    cart = factory.SubFactory(CartFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    quantity = 1
    unit_price = Decimal("19.90")


class NpsResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NpsResponse

    customer = factory.SubFactory(CustomerFactory)
    score = 9


def message_reached(*, campaign_id: int, customer: Customer, status: str, at: dt.datetime):
    """A campaign message that reached (``sent``) or held out (``held_out``) the customer at ``at``."""
    from campaigns.models import Message

    return Message.objects.create(
        campaign_id=campaign_id,
        customer=customer,
        channel="email",
        dedupe_key=customer.external_id,
        status=status,
        scheduled_at=at,
        send_at=at,
        sent_at=at if status == "sent" else None,
        touched_at=at,
    )


def campaign_half_converted(*, campaign_id: int, at: dt.datetime) -> None:
    """Two sent messages (one buys a day later) and two held out (none buys): 50 % against 0 %."""
    from customers.services import PurchaseInput, purchase_record

    for number, (name, status, buys) in enumerate(
        [("t1", "sent", True), ("t2", "sent", False), ("c1", "held_out", False), ("c2", "held_out", False)]
    ):
        customer, _ = Customer.objects.get_or_create(external_id=name)
        message_reached(campaign_id=campaign_id, customer=customer, status=status, at=at)
        if buys:
            placed = at + dt.timedelta(days=1)
            purchase_record(
                data=PurchaseInput.clean(
                    {"external_id": f"w-{number}", "customer": name, "placed_at": placed, "total": "25.00"}
                )
            )
