"""What a new staff user reads in the customers admin: money as money, tiers by name, the NPS model's
name, the customer list's order, the 360's messages and NPS answers (in a fixed number of
queries), the message page, and where "/" and /favicon.ico lead."""

import datetime as dt
import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Message
from campaigns.services import campaign_create
from customers.models import Customer, NpsResponse, TierChange
from retention_crm.money import money
from tests.factories import CartFactory, CartItemFactory, CustomerFactory, NpsResponseFactory, PurchaseFactory
from tests.loyalty_support import program_set

pytestmark = pytest.mark.django_db

TIERS = [("bronze", "Bronze", "0", "1"), ("gold", "Gold Club", "2000", "1.5")]


def text_of(response) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def make_campaign(name: str, **fields) -> Campaign:
    data = {
        "name": name,
        "trigger": "reactivation",
        "channel": "email",
        "status": "active",
        "subject": "{{ customer.first_name }}, we miss you",
        "body": "Hi {{ customer.first_name }}, you have {{ points.balance }} points.",
        "holdout_percent": 0,
        **fields,
    }
    return campaign_create(data=data)


def make_message(campaign, customer: Customer, key: str, **fields) -> Message:
    at = timezone.now() - dt.timedelta(days=2)
    return Message.objects.create(
        campaign=campaign,
        customer=customer,
        channel=campaign.channel,
        dedupe_key=key,
        scheduled_at=at,
        send_at=at,
        **fields,
    )


# --- Money and tier names ------------------------------------------------------------------------


def test_money_is_written_in_the_store_currency_with_two_decimals(settings):
    settings.STORE_CURRENCY = "USD"
    assert money(Decimal("852.270000000000")) == "$852.27"
    assert money(Decimal("1234.5")) == "$1,234.50"
    assert money(0) == "$0.00"
    assert money(None) == "—"
    settings.STORE_CURRENCY = "EUR"
    assert money(Decimal("19.9")) == "€19.90"
    settings.STORE_CURRENCY = "CHF"
    assert money(Decimal("12")) == "12.00 CHF"


def test_the_customer_list_shows_money_tier_names_and_points(admin_client):
    program_set(tiers=TIERS)
    CustomerFactory(external_id="rich", tier="gold", total_spent=Decimal("2852.27"), points_balance=4321)
    response = admin_client.get(reverse("admin:customers_customer_changelist"))
    assert response.status_code == 200
    row = next(row for row in re.findall(r"<tr>.*?</tr>", response.content.decode(), flags=re.S) if "rich" in row)
    cells = [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in re.findall(r"<t[dh].*?</t[dh]>", row)
    ]
    assert "$2,852.27" in cells
    assert "Gold Club" in cells  # the tier's name, not its code ("gold") nor "Gold"
    assert "4321" in cells
    headings = text_of(response)
    assert "Tier" in headings and "Points" in headings


def test_the_customer_list_puts_recent_buyers_first_and_never_buyers_last(admin_client):
    now = timezone.now()
    CustomerFactory(external_id="never", last_purchase_at=None)
    CustomerFactory(external_id="last-year", last_purchase_at=now - dt.timedelta(days=300))
    CustomerFactory(external_id="yesterday", last_purchase_at=now - dt.timedelta(days=1))
    CustomerFactory(external_id="last-month", last_purchase_at=now - dt.timedelta(days=30))
    response = admin_client.get(reverse("admin:customers_customer_changelist"))
    shown = re.findall(r'<th class="field-external_id"><a [^>]*>([^<]+)</a>', response.content.decode())
    assert shown == ["yesterday", "last-month", "last-year", "never"]


def test_the_tier_filter_offers_tier_names(admin_client):
    program_set(tiers=TIERS)
    CustomerFactory(external_id="gold-one", tier="gold")
    CustomerFactory(external_id="bronze-one", tier="bronze")
    response = admin_client.get(reverse("admin:customers_customer_changelist"), {"tier": "gold"})
    page = text_of(response)
    assert "Gold Club" in page
    assert "gold-one" in page and "bronze-one" not in page


def test_purchases_and_their_items_show_money(admin_client):
    purchase = PurchaseFactory(total=Decimal("852.27"))
    purchase.items.create(sku="TEA", name="Tea", quantity=2, unit_price=Decimal("9.5"))
    listing = text_of(admin_client.get(reverse("admin:customers_purchase_changelist")))
    assert "$852.27" in listing
    page = text_of(admin_client.get(reverse("admin:customers_purchase_change", args=[purchase.pk])))
    assert "$852.27" in page and "$9.50" in page


def test_tier_changes_show_tier_names_and_money(admin_client):
    program_set(tiers=TIERS)
    customer = CustomerFactory()
    TierChange.objects.create(
        customer=customer, from_tier="bronze", to_tier="gold", trailing_spend=Decimal("2100.5"), cause="purchase"
    )
    page = text_of(admin_client.get(reverse("admin:customers_tierchange_changelist")))
    assert "Bronze" in page and "Gold Club" in page and "$2,100.50" in page


def test_the_nps_model_reads_nps_answers():
    assert NpsResponse._meta.verbose_name == "NPS answer"
    assert NpsResponse._meta.verbose_name_plural == "NPS answers"


def test_the_admin_index_names_nps_answers(admin_client):
    page = text_of(admin_client.get(reverse("admin:index")))
    assert "NPS answers" in page
    assert "Nps responses" not in page


# --- The customer 360 ------------------------------------------------------------------------------


def test_the_360_shows_money_the_tier_name_and_readable_consent(admin_client):
    program_set(tiers=TIERS)
    customer = CustomerFactory(tier="gold", total_spent=Decimal("852.270000000000"))
    customer.consents.create(channel="email", granted=True, source="api")
    response = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    html = response.content.decode()
    assert re.search(r'data-stat="total_spent">\s*\$852\.27\s*<', html)
    assert re.search(r'data-stat="tier">Gold Club<', html)
    assert '<span class="badge granted">granted</span>' in html


def test_the_360_lists_messages_and_nps_answers(admin_client):
    customer = CustomerFactory(first_name="Ada")
    campaign = make_campaign("We miss you")
    sent_at = timezone.now() - dt.timedelta(days=1)
    message = make_message(campaign, customer, "k1", status="clicked", sent_at=sent_at, clicked_at=sent_at)
    make_message(campaign, customer, "k2", status="suppressed", reason="frequency_cap")
    NpsResponseFactory(customer=customer, score=3, comment="Parcel arrived broken")
    other = CustomerFactory()
    make_message(campaign, other, "k3", status="sent", sent_at=sent_at)

    response = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    html = response.content.decode()
    messages_table = re.search(r'<table id="customer-360-messages">.*?</table>', html, flags=re.S).group(0)
    rows = re.findall(r'<tr class="message".*?</tr>', messages_table, flags=re.S)
    assert len(rows) == 2  # the other customer's message is not listed
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", messages_table)).split())
    assert "We miss you" in text
    assert "Clicked" in text and "Suppressed (Frequency cap)" in text
    assert "Ada, we miss you" in text  # the subject, rendered for this customer
    assert reverse("admin:customers_customer_message", args=[customer.pk, message.pk]) in messages_table
    nps = re.search(r'<table id="customer-360-nps">.*?</table>', html, flags=re.S).group(0)
    assert "Parcel arrived broken" in nps and 'data-score="3"' in nps


def _change_page_queries(client, customer: Customer) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    assert response.status_code == 200
    return len(queries)


def test_the_360_reads_messages_and_nps_in_a_fixed_number_of_queries(admin_client):
    customer = CustomerFactory()
    first = make_campaign("Cart reminder", subject="{{ cart.items|length }} items left", body="{{ cart.total }}")
    make_message(first, customer, "k0", status="sent", sent_at=timezone.now(), cart=CartFactory(customer=customer))
    NpsResponseFactory(customer=customer)
    one = _change_page_queries(admin_client, customer)

    campaigns = [first, make_campaign("Points", subject="{{ points.expiring }} points"), make_campaign("Hello")]
    for number in range(1, 25):
        cart = CartFactory(customer=customer)
        CartItemFactory(cart=cart)
        campaign = campaigns[number % 3]
        make_message(campaign, customer, f"k{number}", status="sent", sent_at=timezone.now(), cart=cart)
        NpsResponseFactory(customer=customer)
    many = _change_page_queries(admin_client, customer)
    # Two more campaigns may add their one "points expiring" read; nothing grows with the rows.
    assert many <= one + 1, (one, many)


# --- The message page ------------------------------------------------------------------------------


def test_the_message_page_shows_the_rendered_subject_and_body(admin_client):
    customer = CustomerFactory(first_name="Grace", points_balance=120)
    campaign = make_campaign("We miss you")
    message = make_message(campaign, customer, "k1", status="sent", sent_at=timezone.now())
    response = admin_client.get(reverse("admin:customers_customer_message", args=[customer.pk, message.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<pre id="message-subject">Grace, we miss you</pre>', html)
    assert re.search(r'<pre id="message-body">Hi Grace, you have 120 points.</pre>', html)
    assert "We miss you" in text_of(response)


def test_a_template_that_fails_shows_the_error_not_a_crash(admin_client):
    customer = CustomerFactory()
    campaign = make_campaign("Broken")
    Campaign.objects.filter(pk=campaign.pk).update(body="{% if %}")  # edited by hand
    message = make_message(campaign, customer, "k1")
    response = admin_client.get(reverse("admin:customers_customer_message", args=[customer.pk, message.pk]))
    assert response.status_code == 200
    assert 'id="message-render-error"' in response.content.decode()


def test_another_customers_message_is_not_found_on_this_customer(admin_client):
    customer, other = CustomerFactory(), CustomerFactory()
    message = make_message(make_campaign("Hello"), other, "k1")
    response = admin_client.get(reverse("admin:customers_customer_message", args=[customer.pk, message.pk]))
    assert response.status_code == 404


def test_staff_who_may_not_view_messages_neither_see_them_nor_open_them(client):
    clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_customer", "change_customer"]))
    client.force_login(clerk)
    customer = CustomerFactory()
    message = make_message(make_campaign("Hello"), customer, "k1")
    page = client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert "customer-360-messages" not in page
    response = client.get(reverse("admin:customers_customer_message", args=[customer.pk, message.pk]))
    assert response.status_code == 403


# --- "/" and the favicon ---------------------------------------------------------------------------


def test_the_front_page_sends_visitors_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_the_front_page_sends_dashboard_readers_to_the_dashboard(admin_client):
    response = admin_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:metrics_dashboard_changelist")


def test_the_front_page_sends_other_staff_to_the_admin_index(client):
    clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(clerk)
    response = client.get("/")
    assert response["Location"] == reverse("admin:index")
    assert client.get(response["Location"]).status_code == 200


def test_the_admin_links_a_favicon_and_favicon_ico_leads_to_it(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert icon, "the admin's pages name their icon"
    response = admin_client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == icon.group(1)
