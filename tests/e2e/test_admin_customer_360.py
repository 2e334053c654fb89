"""Staff find a customer and read their 360 in a real browser."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import Message
from campaigns.services import campaign_create
from customers.services import PurchaseInput, cart_upsert, customer_upsert, nps_record, purchase_record

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ada():
    customer, _ = customer_upsert(
        external_id="shop-ada-1815",
        data={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "consents": {"email": True}},
    )
    placed = timezone.now() - dt.timedelta(days=3)
    for number, total in ((1, "120.50"), (2, "79.50")):
        purchase_record(
            data=PurchaseInput.clean(
                {
                    "external_id": f"ada-order-{number}",
                    "customer": customer.external_id,
                    "placed_at": placed + dt.timedelta(hours=number),
                    "total": total,
                    "items": [
                        {"sku": f"TEA-{number}", "name": f"Earl Grey {number}", "quantity": 1, "unit_price": total}
                    ],
                }
            )
        )
    cart_upsert(
        external_id="ada-cart",
        customer=customer.external_id,
        items=[{"sku": "MUG", "quantity": 2, "unit_price": "9.90"}],
    )
    customer_upsert(external_id="shop-bob", data={"first_name": "Bob", "email": "bob@example.com"})
    return customer


def test_login_search_and_open_the_360(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/")
    page.fill("#searchbar", "Lovelace")
    page.press("#searchbar", "Enter")

    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("shop-ada-1815")
    page.click("#result_list tbody tr th a")

    expect(page).to_have_url(re.compile(rf"/admin/customers/customer/{ada.pk}/change/"))
    stats = page.locator("#customer-360-stats")
    expect(stats.locator("[data-stat=orders_count]")).to_have_text("2")
    expect(stats.locator("[data-stat=total_spent]")).to_have_text("$200.00")

    purchases = page.locator("#customer-360-purchases tbody tr.purchase")
    expect(purchases).to_have_count(2)
    expect(purchases.first).to_contain_text("ada-order-2")
    expect(purchases.first).to_contain_text("Earl Grey 2")
    expect(page.locator("#customer-360-carts")).to_contain_text("MUG")
    expect(page.locator("#customer-360-consents")).to_contain_text("granted")
    expect(page.locator("#customer-360-consent-history")).to_contain_text("API")


def test_search_by_email_prefix_and_external_id(admin_page: Page, live_server, ada):
    page = admin_page
    for term in ("bob@ex", "shop-ada"):
        page.goto(f"{live_server.url}/admin/customers/customer/?q={term}")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)


def test_staff_revoke_consent_in_the_admin_is_recorded(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/change/")
    page.uncheck("#id_consent_email")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("changed successfully")
    history = page.locator("#customer-360-consent-history tbody tr")
    expect(history.first).to_contain_text("revoked")
    expect(history.first).to_contain_text("Admin")


def test_ledger_has_no_add_or_delete_in_the_admin(admin_page: Page, live_server):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/pointsentry/")
    expect(page.locator("h1")).to_contain_text("points entr")
    expect(page.locator(".object-tools a.addlink")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/customers/pointsentry/add/")
    assert response is not None and response.status == 403


def test_the_360_shows_the_nightly_rfm_segment_and_churn_risk(admin_page: Page, live_server, ada):
    from metrics.churn_risk import customer_scores_refresh

    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/change/")
    expect(page.locator("[data-stat=rfm_segment]")).to_have_text("—")  # not scored yet

    customer_scores_refresh()
    ada.score.refresh_from_db()
    page.reload()
    expect(page.locator("[data-stat=rfm_segment]")).to_have_text(ada.score.rfm_segment)
    expect(page.locator("[data-stat=churn_risk]")).to_have_text(f"{ada.score.churn_risk:.2f}")


def test_the_360_lists_messages_and_nps_answers_and_opens_a_message(admin_page: Page, live_server, ada):
    campaign = campaign_create(
        data={
            "name": "Your cart misses you",
            "trigger": "abandoned_cart",
            "channel": "email",
            "status": "active",
            "subject": "{{ customer.first_name }}, {{ cart.items|length }} item(s) wait in your cart",
            "body": "Hi {{ customer.first_name }},\n"
            "{% for item in cart.items %}{{ item.quantity }} x {{ item.sku }}\n{% endfor %}",
            "holdout_percent": 0,
        }
    )
    sent_at = timezone.now() - dt.timedelta(hours=5)
    message = Message.objects.create(
        campaign=campaign,
        customer=ada,
        channel="email",
        dedupe_key="ada-cart",
        cart=ada.carts.get(),
        status="clicked",
        scheduled_at=sent_at,
        send_at=sent_at,
        sent_at=sent_at,
        clicked_at=sent_at + dt.timedelta(minutes=30),
    )
    nps_record(customer=ada.external_id, score=9, comment="Lovely tea")

    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/change/")
    row = page.locator("#customer-360-messages tbody tr.message")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Your cart misses you")
    expect(row).to_contain_text("Clicked")
    expect(row).to_contain_text(timezone.localtime(sent_at).strftime("%Y-%m-%d %H:%M"))
    expect(row.locator("a.message-link")).to_have_text("Ada, 1 item(s) wait in your cart")
    nps = page.locator("#customer-360-nps tbody tr.nps-answer")
    expect(nps).to_have_count(1)
    expect(nps).to_contain_text("9")
    expect(nps).to_contain_text("Lovely tea")

    row.locator("a.message-link").click()
    expect(page).to_have_url(re.compile(rf"/admin/customers/customer/{ada.pk}/messages/{message.pk}/$"))
    expect(page.locator("#message-subject")).to_have_text("Ada, 1 item(s) wait in your cart")
    expect(page.locator("#message-body")).to_contain_text("2 x MUG")
    expect(page.locator("#message-status")).to_have_text("Clicked")
