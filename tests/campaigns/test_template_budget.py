"""Templates render under a budget (SPEC §8): allowed filters only, numeric arguments capped, output
capped (subject 998 characters, body 512 KB), loops and blocks nested a bounded depth, about a
second of rendering. Over budget is a template error naming the field when saving (400 in the API)
and a ``failed`` message with the reason when sending, and the worker moves on."""

import datetime as dt
import time
import tracemalloc

import pytest

from campaigns.models import Campaign, Message, MessageStatus
from campaigns.services import campaign_evaluate, messages_send_batch
from campaigns.services.editor import campaign_preview
from campaigns.templating import (
    MAX_BODY_OUTPUT,
    MAX_SUBJECT_OUTPUT,
    RENDER_SECONDS,
    render,
    sample_context,
    template_compile,
    templates_validate,
)
from retention_crm.errors import ApplicationError
from tests.api.conftest import assert_error

LONG = "x" * 3000
WORST = {
    "a huge ljust": '{{ "x"|ljust:"50000000" }}',
    "a huge rjust": '{{ "x"|rjust:"50000000" }}',
    "a huge center": '{{ "x"|center:"50000000" }}',
    "a huge floatformat precision": '{{ 1|floatformat:"100000" }}',
    "six nested loops": '{% for a in "xxxxxxxxxx" %}' * 6 + "y" + "{% endfor %}" * 6,
    "nine nested loops": '{% for a in "xxxxxxxxxx" %}' * 9 + "y" + "{% endfor %}" * 9,
    "three nested loops that output nothing": f'{{% for a in "{LONG}" %}}{{% for b in "{LONG}" %}}'
    f'{{% for c in "{LONG}" %}}{{% endfor %}}{{% endfor %}}{{% endfor %}}',
    "two nested loops with a lot of output": f'{{% for a in "{LONG}" %}}{{% for b in "{LONG}" %}}'
    + "z" * 5000
    + "{% endfor %}{% endfor %}",
    "a separator repeated per character": '{{ "' + "x" * 5000 + '"|make_list|join:"' + "y" * 5000 + '" }}',
    "doubling with add": '{% with a="'
    + "x" * 1000
    + '" %}'
    + "{% with a=a|add:a %}" * 12
    + "{{ a }}"
    + "{% endwith %}" * 13,
    "escaping and doubling": '{% with a="'
    + "&" * 1000
    + '" %}'
    + "{% with a=a|force_escape|add:a %}" * 12
    + "{{ a }}"
    + "{% endwith %}" * 13,
    "blocks nested 40 deep": "{% if 1 %}" * 40 + "x" + "{% endif %}" * 40,
    "blocks nested 900 deep": "{% if 1 %}" * 900 + "x" + "{% endif %}" * 900,
}


@pytest.mark.parametrize("source", WORST.values(), ids=WORST.keys())
def test_the_worst_templates_are_a_template_error_at_save_within_the_budget(source):
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ApplicationError) as raised:
            templates_validate(subject="Hello", body=source, channel="email")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # tracemalloc slows Python down: the time allows for it.
    assert time.monotonic() - started < RENDER_SECONDS * 3
    assert peak < 40 * 1024 * 1024
    assert raised.value.code == "invalid_template"
    assert set(raised.value.fields) == {"body"}


@pytest.mark.parametrize("name", ["stringformat", "urlize", "urlizetrunc", "pprint", "unordered_list"])
def test_filters_outside_the_allow_list_are_refused(name):
    with pytest.raises(ApplicationError, match="Invalid filter"):
        template_compile(f"{{{{ customer.first_name|{name}:'5' }}}}", "body")


def test_the_subject_is_capped_at_998_characters():
    template_compile('{{ "x"|ljust:"998" }}', "subject")  # fits
    templates_validate(subject='{{ "x"|ljust:"998" }}', body="Hi", channel="email")
    with pytest.raises(ApplicationError) as raised:
        templates_validate(subject='{{ "x"|ljust:"999" }}', body="Hi", channel="email")
    assert set(raised.value.fields) == {"subject"}
    assert str(MAX_SUBJECT_OUTPUT) in raised.value.message


def test_the_body_is_capped_at_512_kb():
    fits = '{% for a in "' + "x" * 500 + '" %}' + "y" * 1000 + "{% endfor %}"
    assert len(render(template_compile(fits, "body"), sample_context(), "UTC")) == 500_000
    over = '{% for a in "' + "x" * 600 + '" %}' + "y" * 1000 + "{% endfor %}"
    with pytest.raises(ApplicationError, match=str(MAX_BODY_OUTPUT)):
        templates_validate(subject="Hi", body=over, channel="email")


def test_ordinary_templates_render_as_before():
    body = (
        "Hi {{ customer.first_name|default:'there'|title }}, "
        "{% for item in cart.items %}{% for tag in customer.tags %}{{ item.name|upper }}/{{ tag }} "
        "{% endfor %}{% endfor %}"
        "{{ customer.total_spent|floatformat:2 }} {{ customer.name|ljust:'12' }}|{{ points.expiring_at|date:'Y' }}"
        "{{ cart.items|length|pluralize }} {{ customer.first_name|truncatechars:3 }}"
    )
    output = render(template_compile(body, "body"), sample_context(), "UTC")
    assert output.startswith("Hi Ada, MUG/newsletter 212.40 Ada Lovelace|")


def test_the_api_answers_400_naming_the_field(api):
    campaign = {
        "name": "Budget",
        "trigger": "reactivation",
        "channel": "email",
        "status": "active",
        "subject": "Hi",
        "body": '{{ "x"|ljust:"50000000" }}',
    }
    error = assert_error(api.post("/api/v1/campaigns", campaign, format="json"), 400, "invalid_template", "body")
    assert "ljust" in error["message"]
    assert not Campaign.objects.exists()


def test_the_editor_preview_is_refused_too(db):
    with pytest.raises(ApplicationError) as raised:
        campaign_preview(subject="Hi", body=WORST["three nested loops that output nothing"])
    assert set(raised.value.fields) == {"body"}


# --- At send time ---------------------------------------------------------------------------------


def _queued(make_customer, make_campaign, now, **customer_fields):
    make_customer(last_purchase_at=now - dt.timedelta(days=100), **customer_fields)
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    return campaign


def test_a_template_slow_on_one_customers_data_fails_that_message_and_the_worker_moves_on(
    make_customer, make_campaign, now
):
    # Passes the save check (the sample customer's name is short), slow for a 150-character name.
    slow = (
        "{% for a in customer.first_name %}{% for b in customer.first_name %}"
        "{% for c in customer.first_name %}{% endfor %}{% endfor %}{% endfor %}"
    )
    campaign = _queued(make_customer, make_campaign, now, first_name="N" * 150)
    Campaign.objects.filter(pk=campaign.pk).update(body=slow)
    started = time.monotonic()
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert time.monotonic() - started < RENDER_SECONDS * 2
    assert result.failed == 1
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.FAILED
    assert message.error == f"render: over budget: rendering took longer than {RENDER_SECONDS:g} s"


def test_a_message_over_the_output_cap_fails_with_the_reason(make_customer, make_campaign, now):
    campaign = _queued(make_customer, make_campaign, now, first_name="N" * 150)
    Campaign.objects.filter(pk=campaign.pk).update(
        subject="{% for a in customer.first_name %}{{ customer.first_name }}{% endfor %}"
    )
    messages_send_batch(campaign_id=campaign.pk, now=now)
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.FAILED
    assert message.error == f"render: over budget: the output is longer than {MAX_SUBJECT_OUTPUT} characters"


def test_a_saved_template_over_budget_fails_the_batch_at_send_time(make_customer, make_campaign, now):
    campaign = _queued(make_customer, make_campaign, now)
    Campaign.objects.filter(pk=campaign.pk).update(body=WORST["six nested loops"])  # edited by hand
    messages_send_batch(campaign_id=campaign.pk, now=now)
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.FAILED
    assert "loops nest more than 3 deep" in message.error
