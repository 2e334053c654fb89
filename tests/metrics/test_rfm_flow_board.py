"""The lifecycle board (metrics/board.py) and the admin pages of the flow and the board."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse

from metrics import board, rfm
from metrics.churn_risk import customer_scores_refresh
from metrics.models import CustomerScore, RfmSegmentCount
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def shop() -> None:
    """Twenty customers of every rhythm, scored as of AS_OF."""
    for n in range(1, 21):
        for k in range(1 + n % 4):
            buy(f"cust-{n:02d}", noon(dt.date(2026, 5, n)) - dt.timedelta(days=45 * k + 3 * n), f"{7 * n + k}.00")
    customer_scores_refresh(as_of=AS_OF)


def spend_at_risk_order(segment: str) -> list[str]:
    """The board's order computed in Python over the stored score rows."""
    scores = CustomerScore.objects.filter(rfm_segment=segment).select_related("customer")
    ranked = sorted(scores, key=lambda s: (-(float(s.monetary) * s.churn_risk), -s.customer_id))
    return [score.customer.external_id for score in ranked]


def test_columns_hold_every_segment_with_its_stored_count_and_the_most_at_risk_first():
    shop()
    found = board.board_columns(per_column=3)

    assert found.as_of == AS_OF
    assert [column.segment for column in found.columns] == list(rfm.SEGMENTS)
    assert {column.segment: column.customers for column in found.columns} == rfm.segment_counts(as_of=AS_OF)
    for column in found.columns:
        assert [c.external_id for c in column.first] == spend_at_risk_order(column.segment)[:3]


def test_pages_go_on_by_key_without_gaps_or_repeats():
    shop()
    segment = max(rfm.SEGMENTS, key=lambda name: CustomerScore.objects.filter(rfm_segment=name).count())
    seen, after = [], None
    while True:
        page = board.board_page(segment=segment, after=after, limit=2)
        if not page:
            break
        seen += [c.external_id for c in page]
        after = board.parse_after(page[-1].after)
    assert seen == spend_at_risk_order(segment)
    assert len(seen) >= 3  # more than one page was read


def test_a_page_is_a_range_of_the_spend_at_risk_index_not_a_sort():
    shop()
    with connection.cursor() as cursor:
        # Twenty rows make any plan cheap; with sorting priced out, a plan without a Sort exists
        # only if the index gives the order (as the planner chooses on a big shop).
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {setting} = off")
        for after in (None, (12.5, 3)):
            plan = board.board_page_plan(segment="At risk", after=after)
            assert board.SPEND_AT_RISK_INDEX in plan, plan
            assert "Sort" not in plan, plan


def test_the_board_is_a_fixed_number_of_queries(django_assert_max_num_queries):
    shop()
    with django_assert_max_num_queries(1 + len(rfm.SEGMENTS)):
        board.board_columns()


def test_before_the_first_refresh_the_board_is_empty_not_an_error(admin_client):
    # No scores stored yet (whatever an earlier test committed to this database).
    RfmSegmentCount.objects.all().delete()
    assert board.board_columns().as_of is None
    response = admin_client.get(reverse("admin:metrics_dashboard_board"))
    assert response.status_code == 200
    assert b"board-empty" in response.content


def test_the_board_pages_answer_and_refuse_bad_input_without_a_500(admin_client):
    shop()
    url = reverse("admin:metrics_dashboard_board")
    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.content.count(b"Aim a campaign at this stage") == len(rfm.SEGMENTS)
    assert b"audience_rfm_segment=At%20risk" in page.content
    one = admin_client.get(url, {"segment": "Lost"})
    assert one.status_code == 200 and b'id="stage-page"' in one.content
    for bad in ({"segment": "Whales"}, {"segment": "Lost", "after": "soon"}, {"segment": "Lost", "after": "x:y:z"}):
        response = admin_client.get(url, bad)
        assert response.status_code == 200 and b"messagelist" in response.content, bad


def test_the_flow_page_draws_the_chart_and_lists_a_cell(admin_client):
    shop()
    url = reverse("admin:metrics_dashboard_flow")
    params = {"from": "2026-04-01", "to": "2026-06-01"}
    page = admin_client.get(url, params)
    assert page.status_code == 200
    assert b'id="flow-chart"' in page.content and b"from_segment=none" in page.content

    cell = admin_client.get(url, {**params, "from_segment": "none", "to_segment": "New"})
    assert cell.status_code == 200 and b'id="flow-cell"' in cell.content
    for bad in ({"from": "2026-06-01", "to": "2026-04-01"}, {**params, "from_segment": "Whales", "to_segment": "New"}):
        response = admin_client.get(url, bad)
        assert response.status_code == 200 and b"flow-error" in response.content, bad


def test_the_chart_alone_is_an_svg_document_whose_cells_open_in_the_page(admin_client):
    shop()
    url = reverse("admin:metrics_dashboard_flow_chart")
    response = admin_client.get(url, {"from": "2026-04-01", "to": "2026-06-01"})
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # the dashboard frames it; elsewhere DENY
    body = response.content.decode()
    assert body.count("data-from=") == 9 * 8
    assert 'target="_top"' in body and "from_segment=none" in body
    refused = admin_client.get(url, {"from": "2026-06-01", "to": "2026-04-01"})
    assert refused.status_code == 400 and b"before" in refused.content


def test_the_pages_need_the_dashboard_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password="pw-clerk-123456", is_staff=True)
    client.force_login(staff)
    for name in ("admin:metrics_dashboard_board", "admin:metrics_dashboard_flow", "admin:metrics_dashboard_flow_chart"):
        assert client.get(reverse(name)).status_code == 403


def test_the_admin_index_lists_the_board_for_those_who_may_see_the_dashboard(client, django_user_model):
    analyst = django_user_model.objects.create_user("ana", password="pw-ana-123456", is_staff=True)
    analyst.groups.add(Group.objects.get(name="analyst"))
    client.force_login(analyst)
    index = client.get(reverse("admin:index"))
    assert b"Lifecycle board" in index.content
    entry = client.get(reverse("admin:metrics_lifecycleboard_changelist"))
    assert entry.status_code == 302 and entry["Location"] == reverse("admin:metrics_dashboard_board")

    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123456", is_staff=True)
    client.force_login(clerk)
    assert b"Lifecycle board" not in client.get(reverse("admin:index")).content
    assert client.get(reverse("admin:metrics_lifecycleboard_changelist")).status_code == 403
