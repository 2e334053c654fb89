"""The marketers' campaign editor and the message ledger in the admin.

The editor: a trigger picker with each trigger's parameter form (only the chosen trigger's form
shows), the audience filter with an estimate of who would enter now, subject and body templates
with a live preview rendered for a chosen customer (and whether that customer is eligible now),
the offer and measurement settings. On a saved campaign: activate / pause / archive, run now,
send a test to a staff address (saying where it went), and the report. Every rule is the
services' (one ``campaign_clean`` for the API and this form); this module maps fields and errors,
and ``campaigns.display`` words the figures.

The journey (SPEC §4.1): the form carries the steps as JSON (the API's shape) in one textarea
that ``static/campaigns/journey.js`` keeps in step with a visible list of steps; the services
validate them and their errors (``steps[1].body``) come back next to the named step. Adding,
removing or reordering steps needs the campaign paused: the list says so, and a refused save
(``campaign_active``) is a form error. The change page draws the saved journey as an SVG flow
with each step's counts (``campaigns.flow_svg``); preview and send test take a step and variant.
"""

import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial, wraps
from typing import Any, ClassVar, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns import display, selectors
from campaigns.audience import rfm_segment_names, tier_choices
from campaigns.content import admin as content_admin  # noqa: F401  (the layout and topics screens)
from campaigns.flow_svg import journey_flow_svg
from campaigns.journey import journey_of
from campaigns.models import (
    Attribution,
    Campaign,
    CampaignStatus,
    ContactPolicy,
    Entry,
    ExitOn,
    Message,
    SuppressionReason,
)
from campaigns.services import (
    campaign_clean,
    campaign_create,
    campaign_preview,
    campaign_run,
    campaign_send_test,
    campaign_status_set,
    campaign_update,
)
from campaigns.services.audience import Target, campaign_audience_estimate, customer_eligibility
from campaigns.services.editor import channel_destination, email_destination
from campaigns.services.sending import MAX_SEND_ATTEMPTS
from campaigns.triggers import TRIGGERS
from customers.models import Channel, Customer, Purchase
from customers.selectors import customer_ids_with_external_id
from retention_crm.errors import ApplicationError
from retention_crm.pagination import CappedCountAdminMixin, IndexedOrderChangeList
from retention_crm.readonly_admin import ReadOnlyAdminMixin

logger = logging.getLogger(__name__)

RUN_PERMISSION = "campaigns.run_campaign"
SEND_TEST_PERMISSION = "campaigns.send_test_campaign"
BASE_FIELDS = ("name", "trigger", "channel", "status", "topic")
MESSAGE_FIELDS = ("subject", "body", "body_html")
MEASUREMENT_FIELDS = ("holdout_percent", "attribution_days")
AUDIENCE_FIELDS = (
    "audience_tier",
    "audience_rfm_segment",
    "audience_tags",
    "audience_exclude_tags",
    "audience_min_total_spent",
    "audience_max_total_spent",
    "audience_consent",
)
JOURNEY_FIELDS = ("steps_json", "exit_on", ("reentry_mode", "reentry_days"))
READ_ONLY_FIELDS = (
    "name",
    "trigger",
    "channel",
    "status",
    "params",
    "audience",
    "subject",
    "body",
    "body_html",
    "topic",
    "offer",
    "steps",
    "exit_on",
    "reentry_after_days",
    "holdout_percent",
    "attribution_days",
    "last_evaluated_at",
)
STRUCTURE_LOCKED_NOTE = "Pause the campaign to add, remove or reorder steps; texts can change now."
REENTRY_DEFAULT = ("", "Default: never for a journey, at every new occasion for a single message")
REENTRY_CHOICES = [
    ("never", "Never: at most one entry per customer"),
    ("after_days", "Again, N days after the previous entry ended"),
]
OFFER_FIELDS = ("offer_bonus_points", "offer_discount_percent", "offer_code_prefix")
PREVIEW_CUSTOMER = "preview_customer"  # the editor's preview customer, carried across saves and buttons
PREVIEW_STEP, PREVIEW_VARIANT = "preview_step", "preview_variant"  # which step and variant preview / test show


def param_field_name(trigger: str, param: str) -> str:
    return f"param__{trigger}__{param}"


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _tags(text: str) -> list[str]:
    return [tag.strip() for tag in (text or "").split(",") if tag.strip()]


STEP_FIELD_ORDER = (
    "key",
    "type",
    "weight",  # a variant's
    "channel",
    "subject",
    "body",
    "body_html",
    "offer",
    "variants",
    "auto_winner",
    "minutes",
    "until",
    "condition",
    "yes",
    "no",
    "add",
    "remove",
)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def params_and_offer(fields: Mapping[str, Any], trigger: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chosen trigger's parameters and the offer, from the editor's fields: the form's cleaned
    values (the save) or the posted text (the live preview). Empty fields, and an offer of 0,
    are left out; the services validate the rest."""
    params = {}
    if trigger in TRIGGERS:
        for param in TRIGGERS[trigger].params:
            value = fields.get(param_field_name(trigger, param.name))
            if not _blank(value):
                params[param.name] = value
    offer = {name.removeprefix("offer_"): fields.get(name) for name in OFFER_FIELDS}
    return params, {key: value for key, value in offer.items() if value not in (None, "", 0)}


def _in_reading_order(item: Any) -> Any:
    """A step (or variant) with its key and kind first (the database keeps JSON keys by length)."""
    if not isinstance(item, dict):
        return item
    rank = {name: position for position, name in enumerate(STEP_FIELD_ORDER)}
    ordered = sorted(item, key=lambda name: (rank.get(name, len(rank)), name))
    return {name: [_in_reading_order(x) for x in item[name]] if name == "variants" else item[name] for name in ordered}


def steps_for_editing(steps: list[dict[str, Any]]) -> str:
    """The stored steps as the editor's JSON, readable: key and kind first, then the rest."""
    if not steps:
        return ""
    return json.dumps([_in_reading_order(step) for step in steps], indent=2, ensure_ascii=False)


def steps_parse(text: str) -> Any:
    """The steps textarea: JSON in the API's shape; empty means no steps. Raises ValueError."""
    text = (text or "").strip()
    return json.loads(text) if text else []


class JourneyStepsWidget(forms.Textarea):
    """The steps' JSON, with the visible list journey.js draws from it, the add buttons, and the
    errors of the last save by step and field (placed next to them by the script)."""

    template_name = "campaigns/widgets/journey_steps.html"

    def __init__(self) -> None:
        super().__init__(attrs={"rows": 18, "cols": 90, "class": "journey-json", "spellcheck": "false"})
        self.locked = False  # active campaign: no adding, removing or reordering
        self.step_errors: dict[str, list[str]] = {}

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["locked"] = self.locked
        context["widget"]["locked_note"] = STRUCTURE_LOCKED_NOTE
        context["widget"]["step_errors"] = json.dumps(self.step_errors)
        return context


class CampaignFormBase(forms.ModelForm):
    audience_tier = forms.MultipleChoiceField(
        required=False, label="Tiers", widget=forms.CheckboxSelectMultiple, help_text="Any of; none ticked: all"
    )
    audience_rfm_segment = forms.MultipleChoiceField(
        required=False, label="RFM segments", widget=forms.CheckboxSelectMultiple, help_text="Any of; none: all"
    )
    audience_tags = forms.CharField(required=False, label="Tags (any of)", help_text="Comma-separated")
    audience_exclude_tags = forms.CharField(required=False, label="Tags (none of)", help_text="Comma-separated")
    audience_min_total_spent = forms.DecimalField(required=False, label="Min total spent", decimal_places=2)
    audience_max_total_spent = forms.DecimalField(required=False, label="Max total spent", decimal_places=2)
    audience_consent = forms.MultipleChoiceField(
        required=False,
        label="Also consented to",
        choices=Channel.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Channels the customer must also have granted",
    )
    offer_bonus_points = forms.IntegerField(required=False, label="Bonus points", min_value=0)
    offer_discount_percent = forms.IntegerField(required=False, label="Discount %", min_value=0, max_value=100)
    offer_code_prefix = forms.CharField(
        required=False, label="Discount code prefix", help_text="Each message gets its own code, e.g. BACK-1A2B3C4D"
    )
    steps_json = forms.CharField(required=False, label="Steps", widget=JourneyStepsWidget())
    exit_on = forms.ChoiceField(
        required=False,
        label="Goal exit",
        choices=ExitOn.choices,
        help_text="An entry that reaches the goal leaves the journey at once, also in the middle of a wait.",
    )
    reentry_mode = forms.ChoiceField(required=False, label="Re-entry", choices=REENTRY_CHOICES)
    reentry_days = forms.IntegerField(
        required=False, label="N days", min_value=0, help_text="0: a new entry at every new occasion"
    )
    # A refusal of the save itself (the campaign became active meanwhile): shown on the form
    # re-rendered with the staff member's edits (CampaignAdmin.changeform_view).
    save_refused: ApplicationError | None = None

    class Meta:
        model = Campaign
        fields = (*BASE_FIELDS, *MESSAGE_FIELDS, *MEASUREMENT_FIELDS)
        widgets = {
            "subject": forms.TextInput(attrs={"class": "vLargeTextField", "autocomplete": "off"}),
            "body": forms.Textarea(attrs={"rows": 12, "cols": 90, "class": "campaign-template", "spellcheck": "false"}),
            "body_html": forms.Textarea(
                attrs={"rows": 12, "cols": 90, "class": "campaign-template", "spellcheck": "false"}
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["audience_tier"]).choices = tier_choices()
        cast(forms.ChoiceField, self.fields["audience_rfm_segment"]).choices = [
            (name, name) for name in rfm_segment_names()
        ]
        if "status" in self.fields:
            cast(forms.ChoiceField, self.fields["status"]).choices = [
                (value, label) for value, label in CampaignStatus.choices if value != CampaignStatus.ARCHIVED
            ]
        if "body" in self.fields:
            self.fields["body"].required = False  # a journey's messages are its steps'; the services decide
        self.parsed_steps: Any = None  # the posted steps, parsed (None: not posted, or not JSON)
        campaign = self.instance
        self._journey_initial(campaign)
        if campaign.pk:
            for name, value in (campaign.params or {}).items():
                self.initial[param_field_name(campaign.trigger, name)] = value
            audience = campaign.audience or {}
            self.initial["audience_tier"] = audience.get("tier", [])
            self.initial["audience_rfm_segment"] = audience.get("rfm_segment", [])
            self.initial["audience_tags"] = ", ".join(audience.get("tags", []))
            self.initial["audience_exclude_tags"] = ", ".join(audience.get("exclude_tags", []))
            self.initial["audience_min_total_spent"] = audience.get("min_total_spent")
            self.initial["audience_max_total_spent"] = audience.get("max_total_spent")
            self.initial["audience_consent"] = audience.get("consent", [])
            offer = campaign.offer or {}
            self.initial["offer_bonus_points"] = offer.get("bonus_points")
            self.initial["offer_discount_percent"] = offer.get("discount_percent")
            self.initial["offer_code_prefix"] = offer.get("code_prefix", "")

    def _journey_initial(self, campaign: Campaign) -> None:
        if "steps_json" not in self.fields:
            return
        self.fields["steps_json"].widget.locked = campaign.pk is not None and campaign.status == CampaignStatus.ACTIVE
        if campaign.pk is None:
            self.fields["reentry_mode"].choices = [REENTRY_DEFAULT, *REENTRY_CHOICES]
            self.initial["exit_on"] = ExitOn.PURCHASE
            return
        self.initial["steps_json"] = steps_for_editing(campaign.steps)
        self.initial["exit_on"] = campaign.exit_on
        never = campaign.reentry_after_days is None
        self.initial["reentry_mode"] = "never" if never else "after_days"
        self.initial["reentry_days"] = None if never else campaign.reentry_after_days

    def _posted(self, name: str) -> bool:
        return self.add_prefix(name) in self.data

    def journey_data(self) -> dict[str, Any]:
        """Steps, goal exit and re-entry in the API's shape; a field the post does not carry stays as it is."""
        data = self.cleaned_data
        values: dict[str, Any] = {}
        if self.parsed_steps is not None:
            values["steps"] = self.parsed_steps
        if data.get("exit_on"):
            values["exit_on"] = data["exit_on"]
        mode = data.get("reentry_mode")
        if mode == "never":
            values["reentry"] = "never"
        elif mode == "after_days":
            values["reentry"] = {"after_days": data.get("reentry_days")}
        return values

    def service_data(self) -> dict[str, Any]:
        """The campaign in the API's shape, from the form's fields."""
        data = self.cleaned_data
        params, offer = params_and_offer(data, data.get("trigger") or self.instance.trigger)
        audience = {
            "tier": data.get("audience_tier") or [],
            "rfm_segment": data.get("audience_rfm_segment") or [],
            "tags": _tags(data.get("audience_tags", "")),
            "exclude_tags": _tags(data.get("audience_exclude_tags", "")),
            "min_total_spent": data.get("audience_min_total_spent"),
            "max_total_spent": data.get("audience_max_total_spent"),
            "consent": data.get("audience_consent") or [],
        }
        values = {name: data.get(name) for name in (*BASE_FIELDS, *MESSAGE_FIELDS, *MEASUREMENT_FIELDS) if name in data}
        if self.instance.pk:
            values.pop("status", None)  # status moves through the buttons (activate, pause, archive)
        return {
            **values,
            "params": {name: _number(Decimal(value)) for name, value in params.items()},
            "audience": {key: value for key, value in audience.items() if value not in (None, [], "")},
            "offer": offer,
            **self.journey_data(),
        }

    def field_for_error(self, field: str) -> str | None:
        """Map a service's field name (``params.delay_hours``, ``audience.tier``) to this form's."""
        trigger = self.cleaned_data.get("trigger") or self.instance.trigger
        if field == "steps" or field.startswith("steps["):
            name = "steps_json"
        elif field.startswith("reentry"):
            name = "reentry_days" if field == "reentry.after_days" else "reentry_mode"
        elif field.startswith("params."):
            name = param_field_name(trigger, field.removeprefix("params."))
        elif field.startswith("audience.") or field.startswith("offer."):
            name = field.replace(".", "_", 1)
        else:
            name = field
        return name if name in self.fields else None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if "steps_json" in self.fields and self._posted("steps_json"):
            try:
                self.parsed_steps = steps_parse(cleaned.get("steps_json", ""))
            except ValueError as error:
                self.add_error("steps_json", f"not valid JSON: {error}")
                self.fields["steps_json"].widget.step_errors = {"steps": [f"not valid JSON: {error}"]}
        if self.errors:
            return cleaned
        if self.save_refused is not None:
            self.add_service_error(self.save_refused, on_top=True)
            return cleaned
        try:
            campaign_clean(data=self.service_data(), instance=self.instance if self.instance.pk else None)
        except ApplicationError as error:
            self.add_service_error(error)
        return cleaned

    def add_service_error(self, error: ApplicationError, *, on_top: bool = False) -> None:
        """A service's refusal on the fields it names; a step's problems also go to the list of
        steps, by their own names (``steps[1].body``), for the script to place next to them."""
        step_errors: dict[str, list[str]] = {}
        for field, problems in error.fields.items():
            problems = problems if isinstance(problems, list) else [problems]
            name = self.field_for_error(field)
            if name == "steps_json":
                step_errors[field] = [str(problem) for problem in problems]
                problems = [f"{field}: {problem}" if field != "steps" else problem for problem in problems]
            self.add_error(name, problems)
        if on_top or not error.fields:
            self.add_error(None, error.message)
        if step_errors and "steps_json" in self.fields:
            self.fields["steps_json"].widget.step_errors = step_errors

    def _post_clean(self) -> None:
        # The service validates; the model's own full_clean would check JSON fields the form
        # does not carry.
        pass


def _param_fields() -> dict[str, forms.Field]:
    """One optional form field per trigger parameter; the editor shows the chosen trigger's only."""
    fields: dict[str, forms.Field] = {}
    for trigger in TRIGGERS.values():
        for param in trigger.params:
            field_class = forms.IntegerField if param.integer else forms.DecimalField
            default = "no limit" if param.default is None else param.default
            fields[param_field_name(trigger.name, param.name)] = field_class(
                required=False, label=param.label, help_text=f"{param.help} (default: {default})"
            )
    return fields


# Declared on the class (not added in __init__) so the admin's form factory knows the fields.
CampaignForm = type("CampaignForm", (CampaignFormBase,), {"__module__": __name__, **_param_fields()})


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(CampaignStatus.choices)

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(status=self.value()) if self.value() else queryset


class CampaignChangeList(ChangeList):
    """The campaign list, with every row's sent / conversion / uplift figures from one query for
    the page (``selectors.campaign_list_figures``), not one per campaign."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        figures = selectors.campaign_list_figures(campaign_ids=[campaign.pk for campaign in self.result_list])
        for campaign in self.result_list:
            campaign.list_figures = figures.get(campaign.pk)


def _figures(campaign: Campaign) -> selectors.ListFigures | None:
    return getattr(campaign, "list_figures", None)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = (
        "name",
        "trigger",
        "channel",
        "status",
        "sent_column",
        "conversion_column",
        "uplift_column",
        "holdout_column",
        "last_evaluated_at",
    )
    list_filter = (StatusFilter, "trigger", "channel")
    search_fields = ("name",)
    readonly_fields = ("last_evaluated_at",)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CampaignChangeList

    @admin.display(description="Sent")
    def sent_column(self, campaign: Campaign) -> str:
        figures = _figures(campaign)
        return display.count(figures.sent) if figures else display.DASH

    @admin.display(description="Conversion (control)")
    def conversion_column(self, campaign: Campaign) -> str:
        figures = _figures(campaign)
        if figures is None or not (figures.treated or figures.control):
            return display.DASH
        return f"{display.percent(figures.treated_rate)} ({display.percent(figures.control_rate)})"

    @admin.display(description="Holdout", ordering="holdout_percent")
    def holdout_column(self, campaign: Campaign) -> str:
        return f"{campaign.holdout_percent}%"

    @admin.display(description="Uplift")
    def uplift_column(self, campaign: Campaign) -> str:
        figures = _figures(campaign)
        uplift = figures.uplift if figures else None
        if uplift is None:
            return "no control group" if campaign.holdout_percent == 0 and figures and figures.treated else display.DASH
        return display.uplift_cell(uplift.difference, significant=uplift.p_value < display.SIGNIFICANCE)

    def has_change_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # An archived campaign is history: read-only for everyone.
        if obj is not None and obj.status == CampaignStatus.ARCHIVED:
            return False
        return super().has_change_permission(request, obj)

    # Plain dicts of fieldset options; the stubs want their own (private) TypedDict.
    def get_fieldsets(  # type: ignore[override]
        self, request: HttpRequest, obj: Campaign | None = None
    ) -> list[tuple[str | None, dict[str, Any]]]:
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only (analysts, archived campaigns): the stored fields, no editor.
            return [(None, {"fields": READ_ONLY_FIELDS})]
        base = BASE_FIELDS if obj is None else tuple(name for name in BASE_FIELDS if name != "status")
        fieldsets: list[tuple[str | None, dict]] = [(None, {"fields": base})]
        for trigger in TRIGGERS.values():
            fieldsets.append(
                (
                    f"Parameters: {trigger.label}",
                    {
                        "fields": tuple(param_field_name(trigger.name, param.name) for param in trigger.params),
                        "classes": ("trigger-params", f"trigger-params-{trigger.name}"),
                        "description": trigger.description,
                    },
                )
            )
        fieldsets += [
            ("Audience", {"fields": AUDIENCE_FIELDS, "description": "Filters combine with AND; empty means all."}),
            (
                "Message",
                {
                    "fields": MESSAGE_FIELDS,
                    "classes": ("campaign-message",),
                    "description": "Django template language. Variables: customer, cart (items, total), points "
                    "(balance, expiring, expiring_at), offer, purchase, campaign, unsubscribe_url, preferences_url, "
                    "nps_links (0-10 answer links). Email may also have an HTML body, sent in the shop's email "
                    "layout (logo, colours, footer) with its links tracked; an empty text body is then made from it.",
                },
            ),
            ("Offer", {"fields": OFFER_FIELDS, "classes": ("campaign-offer",)}),
            (
                "Journey",
                {
                    "fields": JOURNEY_FIELDS,
                    "classes": ("campaign-journey",),
                    "description": "Steps the customers walk after they enter, in order: messages (with A/B "
                    "variants), waits, splits on what the customer did, tags. Without steps the campaign sends "
                    "the one message above.",
                },
            ),
            ("Measurement", {"fields": MEASUREMENT_FIELDS}),
        ]
        if obj is not None:
            fieldsets.append(("Activity", {"fields": ("last_evaluated_at",)}))
        return fieldsets

    def save_model(self, request: HttpRequest, obj: Campaign, form: CampaignFormBase, change: bool) -> None:
        if change:
            campaign = campaign_update(campaign_id=obj.pk, data=form.service_data())
        else:
            campaign = campaign_create(data=form.service_data(), user=request.user)
        obj.pk = campaign.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Campaigns with messages are history (reports, attribution): archive instead.
        return False

    def get_form(self, request: HttpRequest, obj: Campaign | None = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change, **kwargs)
        refused = getattr(request, "campaign_save_refused", None)
        if refused is not None:
            form = type(form.__name__, (form,), {"save_refused": refused, "__module__": __name__})
        return form

    def changeform_view(self, request: HttpRequest, object_id=None, form_url="", extra_context=None):
        """A save the services refuse (``campaign_active``: the campaign was activated between the
        form's check and the write) rolls back and comes back as the form, with the edits and the
        refusal on it: never a server error."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as error:
            if request.method != "POST" or hasattr(request, "campaign_save_refused"):
                raise
            request.campaign_save_refused = error  # type: ignore[attr-defined]  # for the retried view only
            return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = {**(extra_context or {}), **self._editor_context(request)}
        campaign = self.get_object(request, unquote(object_id))
        if campaign is not None:
            report = selectors.campaign_report(campaign=campaign)
            journey = journey_of(campaign)
            extra_context["journey_flow"] = journey_flow_svg(
                journey=journey, report=report["steps"], winners=report.get("winner")
            )
            extra_context["step_rows"] = display.steps_report_display(report["steps"], winners=report.get("winner"))
            extra_context["journey_explicit"] = journey.explicit
            extra_context["report"] = report
            extra_context["status_counts"] = display.status_counts_display(report["counts"])
            extra_context["reason_counts"] = display.reason_counts_display(report["reasons"])
            extra_context["impact"] = display.impact_display(report["impact"], holdout_percent=campaign.holdout_percent)
            extra_context["status_moves"] = self._status_moves(campaign)
            extra_context["can_run"] = request.user.has_perm(RUN_PERMISSION) and campaign.status == "active"
            extra_context["can_send_test"] = request.user.has_perm(SEND_TEST_PERMISSION)
            extra_context["staff_email"] = request.user.email  # type: ignore[union-attr]  # admin: signed in
            extra_context["can_edit"] = self.has_change_permission(request, campaign)
            if campaign.channel != Channel.EMAIL:
                extra_context["channel_destination"] = channel_destination(campaign.channel)
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        context = {**(extra_context or {}), **self._editor_context(request), "can_edit": True}
        return super().add_view(request, form_url, context)

    @staticmethod
    def _editor_context(request: HttpRequest) -> dict[str, Any]:
        def carried(name: str) -> str:
            # After a save (the redirect carries it) or a refused save (the form posted it).
            return (request.POST.get(name) or request.GET.get(name) or "").strip()

        return {
            "preview_customer": carried(PREVIEW_CUSTOMER),
            "preview_step": carried(PREVIEW_STEP),
            "preview_variant": carried(PREVIEW_VARIANT),
            "email_destination": email_destination(),
        }

    def response_add(self, request: HttpRequest, obj: Campaign, post_url_continue: str | None = None) -> HttpResponse:
        return _keep_preview_customer(request, super().response_add(request, obj, post_url_continue))

    def response_change(self, request: HttpRequest, obj: Campaign) -> HttpResponse:
        return _keep_preview_customer(request, super().response_change(request, obj))

    @staticmethod
    def _status_moves(campaign: Campaign) -> list[tuple[str, str]]:
        from campaigns.services.campaigns import STATUS_MOVES

        labels = {"active": "Activate", "paused": "Pause", "archived": "Archive"}
        return [(status, labels[status]) for status in sorted(STATUS_MOVES[CampaignStatus(campaign.status)])]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(partial(preview_view, self)), name="campaigns_campaign_preview"),
            path("audience/", wrap(partial(audience_view, self)), name="campaigns_campaign_audience"),
            path("<path:object_id>/run/", wrap(partial(run_view, self)), name="campaigns_campaign_run"),
            path(
                "<path:object_id>/status/<str:status>/",
                wrap(partial(status_view, self)),
                name="campaigns_campaign_status",
            ),
            path(
                "<path:object_id>/send-test/", wrap(partial(send_test_view, self)), name="campaigns_campaign_send_test"
            ),
            *super().get_urls(),
        ]


def post_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """require_POST for the admin views below, which take the model admin first."""

    @wraps(view)
    def guarded(model_admin: "CampaignAdmin", request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return view(model_admin, request, *args, **kwargs)

    return guarded


def _campaign_or_404(model_admin: CampaignAdmin, request: HttpRequest, object_id: str) -> Campaign:
    campaign = model_admin.get_object(request, unquote(object_id))
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def _with_preview_customer(url: str, request: HttpRequest) -> str:
    """The page comes back with the same preview customer (and step and variant of a journey)."""
    carried = {name: request.POST.get(name, "").strip() for name in (PREVIEW_CUSTOMER, PREVIEW_STEP, PREVIEW_VARIANT)}
    carried = {name: value for name, value in carried.items() if value}
    if not carried:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(carried)}"


def _keep_preview_customer(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """After "Save and continue editing" the editor comes back with the same preview customer."""
    if isinstance(response, HttpResponseRedirect) and "_continue" in request.POST:
        response["Location"] = _with_preview_customer(response["Location"], request)
    return response


def _back(campaign: Campaign, request: HttpRequest) -> HttpResponseRedirect:
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    return HttpResponseRedirect(_with_preview_customer(url, request))


def _posted_audience(data: Any) -> dict[str, Any]:
    audience = {
        "tier": data.getlist("audience_tier"),
        "rfm_segment": data.getlist("audience_rfm_segment"),
        "tags": _tags(data.get("audience_tags", "")),
        "exclude_tags": _tags(data.get("audience_exclude_tags", "")),
        "min_total_spent": data.get("audience_min_total_spent", "").strip() or None,
        "max_total_spent": data.get("audience_max_total_spent", "").strip() or None,
        "consent": data.getlist("audience_consent"),
    }
    return {key: value for key, value in audience.items() if value not in (None, [], "")}


def _posted_target(model_admin: "CampaignAdmin", request: HttpRequest) -> Target:
    """Who the editor's current (unsaved) campaign addresses; a saved campaign's id brings in its
    ledger (occasions already messaged) and its control-group hash."""
    data = request.POST
    campaign_id = None
    if data.get("campaign_id", "").strip():
        campaign = model_admin.get_object(request, data["campaign_id"].strip())
        campaign_id = campaign.pk if campaign is not None else None
    trigger = data.get("trigger", "")
    return Target.clean(
        trigger=trigger,
        params=params_and_offer(data, trigger)[0],
        channel=data.get("channel", "") or Channel.EMAIL,
        audience=_posted_audience(data),
        holdout_percent=data.get("holdout_percent", ""),
        campaign_id=campaign_id,
        topic=data.get("topic", ""),
    )


def _posted_steps(data: Any) -> Any:
    """The editor's (unsaved) steps; a post without them previews the campaign's own message."""
    try:
        return steps_parse(data.get("steps_json", ""))
    except ValueError as error:
        raise ApplicationError(
            f"steps: not valid JSON: {error}", code="invalid", fields={"steps": [f"not valid JSON: {error}"]}
        ) from None


def _may_edit(model_admin: "CampaignAdmin", request: HttpRequest) -> None:
    if not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)):
        raise PermissionDenied


@post_only
def preview_view(model_admin: CampaignAdmin, request: HttpRequest) -> HttpResponse:
    """The live preview: render the editor's current (unsaved) templates for a customer, as JSON,
    with whether that customer is eligible now (and if not, why)."""
    _may_edit(model_admin, request)
    data = request.POST
    trigger = data.get("trigger", "")
    params, offer = params_and_offer(data, trigger)
    customer_external_id = data.get(PREVIEW_CUSTOMER, "").strip() or None
    try:
        preview = campaign_preview(
            subject=data.get("subject", ""),
            body=data.get("body", ""),
            body_html=data.get("body_html", ""),
            offer=offer,
            trigger=trigger,
            params=params,
            customer_external_id=customer_external_id,
            steps=_posted_steps(data),
            channel=data.get("channel", "") or Channel.EMAIL,
            step_key=data.get(PREVIEW_STEP, "").strip() or None,
            variant_key=data.get(PREVIEW_VARIANT, "").strip() or None,
        )
    except ApplicationError as error:
        return JsonResponse(error.as_dict(), status=error.status)
    answer: dict[str, Any] = {
        "subject": preview.subject,
        "body": preview.body,
        "html": preview.html,
        "customer": preview.customer,
        "step": preview.step_key,
        "variant": preview.variant_key,
    }
    if customer_external_id:
        customer_id = Customer.objects.filter(external_id=customer_external_id).values_list("pk", flat=True).first()
        try:
            eligibility = customer_eligibility(target=_posted_target(model_admin, request), customer_id=customer_id)
        except ApplicationError as error:
            answer["eligibility"] = {
                "eligible": None,
                "text": f"Eligibility unknown until the form is fixed: {error.message}",
            }
        else:
            answer["eligibility"] = eligibility.as_dict()
    return JsonResponse(answer)


@post_only
def audience_view(model_admin: CampaignAdmin, request: HttpRequest) -> HttpResponse:
    """The audience estimate for the editor's current (unsaved) trigger, parameters and filters."""
    _may_edit(model_admin, request)
    try:
        estimate = campaign_audience_estimate(target=_posted_target(model_admin, request))
    except ApplicationError as error:
        return JsonResponse(error.as_dict(), status=error.status)
    return JsonResponse(
        {
            "text": estimate.text,
            "eligible": estimate.eligible,
            "would_enter": estimate.would_enter,
            "held_out": estimate.held_out,
            "held_out_exact": estimate.held_out_exact,
        }
    )


@post_only
def run_view(model_admin: CampaignAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    if not request.user.has_perm(RUN_PERMISSION):
        raise PermissionDenied
    campaign = _campaign_or_404(model_admin, request, object_id)
    try:
        result = campaign_run(campaign_id=campaign.pk)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        counts = result.counts()
        messages.success(
            request,
            "Run now: {queued} queued, {held_out} held out (control group), {suppressed} suppressed, "
            "{deferred} waiting for the frequency cap.".format(**counts),
        )
    return _back(campaign, request)


@post_only
def status_view(model_admin: CampaignAdmin, request: HttpRequest, object_id: str, status: str) -> HttpResponse:
    campaign = _campaign_or_404(model_admin, request, object_id)
    if not model_admin.has_change_permission(request, campaign):
        raise PermissionDenied
    try:
        campaign = campaign_status_set(campaign_id=campaign.pk, status=status)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The campaign is {campaign.get_status_display().lower()}.")
    return _back(campaign, request)


@post_only
def send_test_view(model_admin: CampaignAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    if not request.user.has_perm(SEND_TEST_PERMISSION):
        raise PermissionDenied
    campaign = _campaign_or_404(model_admin, request, object_id)
    to = request.POST.get("to", "").strip()
    customer = request.POST.get("preview_customer", "").strip() or None
    try:
        result = campaign_send_test(
            campaign_id=campaign.pk,
            to=to,
            staff_username=request.user.get_username(),
            staff_email=request.user.email,  # type: ignore[union-attr]  # admin views: a signed-in user
            customer_external_id=customer,
            step_key=request.POST.get(PREVIEW_STEP, "").strip() or None,
            variant_key=request.POST.get(PREVIEW_VARIANT, "").strip() or None,
        )
    except ApplicationError as error:
        messages.error(request, f"Test not sent: {error.message}")
    except Exception as error:  # the mail server refused or is unreachable: say so, keep the page
        logger.warning("campaign.send_test_failed", extra={"campaign_id": campaign.pk}, exc_info=True)
        messages.error(request, f"Test not sent: {error} (email here is {email_destination()})")
    else:
        messages.success(request, result.text)
    return _back(campaign, request)


def _policy_view() -> display.PolicyView:
    """The contact policy as stored (its defaults before staff first save it); read, never created."""
    policy = ContactPolicy.objects.filter(pk=ContactPolicy.SINGLETON_ID).first() or ContactPolicy()
    return display.PolicyView(
        max_messages=policy.max_messages,
        cap_days=policy.cap_days,
        quiet_hours_start=policy.quiet_hours_start,
        quiet_hours_end=policy.quiet_hours_end,
    )


def _wait_reason(message: Message, policy: display.PolicyView, now: Any) -> str:
    return display.wait_reason(
        status=message.status,
        reason=message.reason,
        send_at=message.send_at,
        attempts=message.attempts,
        error=message.error,
        customer_timezone=message.customer.timezone,
        campaign_status=message.campaign.status,
        policy=policy,
        now=now,
        max_attempts=MAX_SEND_ATTEMPTS,
    )


class MessageChangeList(IndexedOrderChangeList):
    """The message list: why each queued message waits, with the contact policy read once per page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        policy, now = _policy_view(), timezone.now()
        for message in self.result_list:
            message.wait_text = _wait_reason(message, policy, now)


class ReasonFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(SuppressionReason.choices)

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(reason=self.value()) if self.value() else queryset


def exact_key_search(term: str) -> Q:
    """Messages or entries of the customer with exactly this external id, or with exactly this
    dedupe key in any campaign. The dedupe key is unique per campaign, so naming every campaign
    (a few dozen ids) lets that index serve it; each arm is one index probe."""
    condition = Q(customer_id__in=customer_ids_with_external_id(term))
    campaign_ids = list(Campaign.objects.values_list("pk", flat=True))
    if campaign_ids:
        condition |= Q(campaign_id__in=campaign_ids, dedupe_key=term)
    return condition


@admin.register(Message)
class MessageAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_uuid",
        "campaign",
        "step_column",
        "customer",
        "channel",
        "status",
        "reason_text",
        "waits",
        "send_at",
        "sent_at",
    )
    list_filter = ("status", "channel", ReasonFilter, "campaign")
    ordering = ("-id",)
    sortable_by: ClassVar[tuple[str, ...]] = ()  # no other column has an index to page through
    search_fields = ("uuid", "customer__external_id", "dedupe_key")  # the search box; see get_search_results
    search_help_text = "Message UUID, customer external id or dedupe key, exactly."
    list_select_related = ("campaign", "customer")
    readonly_fields = [
        *(field.name for field in Message._meta.fields if field.name != "reason"),
        "reason_text",
        "waits",
        "content",
    ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return MessageChangeList

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = exact_key_search(term)
        with contextlib.suppress(ValueError):  # a term that is no UUID is no message's UUID
            condition |= Q(uuid=uuid.UUID(term))
        return queryset.filter(condition), False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        message = self.get_object(request, unquote(object_id))
        if message is not None:
            extra_context = {**(extra_context or {}), "subtitle": message_label(message)}
        return super().change_view(request, object_id, form_url, extra_context)

    # Field names are a valid fields spec; only list's invariance makes list[str] differ from it.
    def get_fields(self, request: HttpRequest, obj: Message | None = None) -> list[str]:  # type: ignore[override]
        names = [field.name for field in Message._meta.fields if field.name != "id"]
        at = names.index("reason")
        return [*names[:at], "reason_text", "waits", *names[at + 1 :], "content"]

    @admin.display(description="content")
    def content(self, message: Message) -> str:
        # A link, not the text: the rendering lives with the customer 360 (customers imports campaigns).
        url = reverse("admin:customers_customer_message", args=[message.customer_id, message.pk])
        return format_html('<a href="{}">Subject and body, rendered</a>', url)

    @admin.display(description="step")
    def step_column(self, message: Message) -> str:
        """The journey step (and A/B variant) the message belongs to: "nudge/b"."""
        if not message.step_key:
            return display.DASH
        return f"{message.step_key}/{message.variant_key}" if message.variant_key else message.step_key

    @admin.display(description="message")
    def short_uuid(self, message: Message) -> str:
        return f"{str(message.uuid)[:8]}…"

    @admin.display(description="reason")
    def reason_text(self, message: Message) -> str:
        return display.reason_label(message.reason) or display.DASH

    @admin.display(description="why it waits")
    def waits(self, message: Message) -> str:
        text = getattr(message, "wait_text", None)
        if text is None:  # the message's own page
            text = _wait_reason(message, _policy_view(), timezone.now())
        return text or display.DASH


def message_label(message: Message) -> str:
    """A message as staff read it: "Come back → shop-grace: Held out (control group)"."""
    return f"{message.campaign} → {message.customer.external_id}: {display.status_label(message.status)}"


@admin.register(Attribution)
class AttributionAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("purchase", "campaign", "message_column", "attributed_at")
    list_filter = ("campaign",)
    ordering = ("-pk",)  # the purchase's id: newest purchases first, read off the primary key
    sortable_by: ClassVar[tuple[str, ...]] = ()
    search_fields = ("purchase__external_id", "purchase__customer__external_id")  # see get_search_results
    search_help_text = "A purchase's external id, or a customer's: exactly."
    list_select_related = ("purchase", "campaign", "message__campaign", "message__customer")
    readonly_fields = ("purchase", "message_column", "campaign", "attributed_at")
    fields = ("purchase", "message_column", "campaign", "attributed_at")

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        customer_ids = customer_ids_with_external_id(term)
        purchases = Purchase.objects.filter(Q(external_id=term) | Q(customer_id__in=customer_ids))
        return queryset.filter(purchase_id__in=purchases.values("pk")), False

    @admin.display(description="message")
    def message_column(self, attribution: Attribution) -> str:
        return message_label(attribution.message)


@admin.register(Entry)
class EntryAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who is where in a journey (SPEC §4.1): read-only, the advancing statements write them."""

    list_display = ("campaign", "customer", "state", "step_key", "next_at", "exit_reason", "held_out", "entered_at")
    list_filter = ("state", "exit_reason", "held_out", "campaign")
    ordering = ("-id",)
    sortable_by: ClassVar[tuple[str, ...]] = ()  # no other column has an index to page through
    search_fields = ("customer__external_id", "dedupe_key")  # the search box; see get_search_results
    search_help_text = "Customer external id or dedupe key, exactly."
    list_select_related = ("campaign", "customer")
    readonly_fields = [field.name for field in Entry._meta.fields]

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(exact_key_search(term)), False


@admin.register(ContactPolicy)
class ContactPolicyAdmin(admin.ModelAdmin):
    """One record: the frequency cap and quiet hours for every campaign."""

    list_display = ("__str__", "max_messages", "cap_days", "max_defer_hours", "quiet_hours_start", "quiet_hours_end")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ContactPolicy.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
