"""The marketers' campaign editor and the message ledger in the admin.

The editor: a trigger picker with each trigger's parameter form (only the chosen trigger's form
shows), the audience filter, subject and body templates with a live preview rendered for a chosen
customer, the offer and measurement settings. On a saved campaign: activate / pause / archive,
run now, send a test to a staff address, and the report. Every rule is the services' (one
``campaign_clean`` for the API and this form); this module maps fields and errors.
"""

from collections.abc import Callable
from decimal import Decimal
from functools import partial, wraps
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import path, reverse

from campaigns import selectors
from campaigns.audience import rfm_segment_names, tier_codes
from campaigns.models import Attribution, Campaign, CampaignStatus, ContactPolicy, Message
from campaigns.services import (
    campaign_clean,
    campaign_create,
    campaign_preview,
    campaign_run,
    campaign_send_test,
    campaign_status_set,
    campaign_update,
)
from campaigns.triggers import TRIGGERS
from customers.models import Channel
from retention_crm.errors import ApplicationError
from retention_crm.readonly_admin import ReadOnlyAdminMixin

RUN_PERMISSION = "campaigns.run_campaign"
SEND_TEST_PERMISSION = "campaigns.send_test_campaign"
BASE_FIELDS = ("name", "trigger", "channel", "status")
MESSAGE_FIELDS = ("subject", "body")
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
READ_ONLY_FIELDS = (
    "name",
    "trigger",
    "channel",
    "status",
    "params",
    "audience",
    "subject",
    "body",
    "offer",
    "holdout_percent",
    "attribution_days",
    "last_evaluated_at",
)
OFFER_FIELDS = ("offer_bonus_points", "offer_discount_percent", "offer_code_prefix")


def param_field_name(trigger: str, param: str) -> str:
    return f"param__{trigger}__{param}"


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _tags(text: str) -> list[str]:
    return [tag.strip() for tag in (text or "").split(",") if tag.strip()]


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

    class Meta:
        model = Campaign
        fields = (*BASE_FIELDS, *MESSAGE_FIELDS, *MEASUREMENT_FIELDS)
        widgets = {
            "subject": forms.TextInput(attrs={"class": "vLargeTextField", "autocomplete": "off"}),
            "body": forms.Textarea(attrs={"rows": 12, "cols": 90, "class": "campaign-template", "spellcheck": "false"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["audience_tier"].choices = [(code, code) for code in tier_codes()]
        self.fields["audience_rfm_segment"].choices = [(name, name) for name in rfm_segment_names()]
        if "status" in self.fields:
            self.fields["status"].choices = [
                (value, label) for value, label in CampaignStatus.choices if value != CampaignStatus.ARCHIVED
            ]
        campaign = self.instance
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

    def service_data(self) -> dict[str, Any]:
        """The campaign in the API's shape, from the form's fields."""
        data = self.cleaned_data
        trigger = data.get("trigger") or self.instance.trigger
        params: dict[str, Any] = {}
        if trigger in TRIGGERS:
            for param in TRIGGERS[trigger].params:
                value = data.get(param_field_name(trigger, param.name))
                if value is not None:
                    params[param.name] = _number(Decimal(value))
        audience = {
            "tier": data.get("audience_tier") or [],
            "rfm_segment": data.get("audience_rfm_segment") or [],
            "tags": _tags(data.get("audience_tags", "")),
            "exclude_tags": _tags(data.get("audience_exclude_tags", "")),
            "min_total_spent": data.get("audience_min_total_spent"),
            "max_total_spent": data.get("audience_max_total_spent"),
            "consent": data.get("audience_consent") or [],
        }
        offer = {
            "bonus_points": data.get("offer_bonus_points"),
            "discount_percent": data.get("offer_discount_percent"),
            "code_prefix": data.get("offer_code_prefix") or None,
        }
        values = {name: data.get(name) for name in (*BASE_FIELDS, *MESSAGE_FIELDS, *MEASUREMENT_FIELDS) if name in data}
        if self.instance.pk:
            values.pop("status", None)  # status moves through the buttons (activate, pause, archive)
        return {
            **values,
            "params": params,
            "audience": {key: value for key, value in audience.items() if value not in (None, [], "")},
            "offer": {key: value for key, value in offer.items() if value not in (None, "", 0)},
        }

    def field_for_error(self, field: str) -> str | None:
        """Map a service's field name (``params.delay_hours``, ``audience.tier``) to this form's."""
        trigger = self.cleaned_data.get("trigger") or self.instance.trigger
        if field.startswith("params."):
            name = param_field_name(trigger, field.removeprefix("params."))
        elif field.startswith("audience.") or field.startswith("offer."):
            name = field.replace(".", "_", 1)
        else:
            name = field
        return name if name in self.fields else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            campaign_clean(data=self.service_data(), instance=self.instance if self.instance.pk else None)
        except ApplicationError as error:
            for field, problems in error.fields.items():
                self.add_error(self.field_for_error(field), problems)
            if not error.fields:
                self.add_error(None, error.message)
        return cleaned

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


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = ("name", "trigger", "channel", "status", "holdout_percent", "last_evaluated_at")
    list_filter = (StatusFilter, "trigger", "channel")
    search_fields = ("name",)
    readonly_fields = ("last_evaluated_at",)

    def has_change_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # An archived campaign is history: read-only for everyone.
        if obj is not None and obj.status == CampaignStatus.ARCHIVED:
            return False
        return super().has_change_permission(request, obj)

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> list[tuple[str | None, dict]]:
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
                    "(balance, expiring, expiring_at), offer, purchase, campaign, unsubscribe_url.",
                },
            ),
            ("Offer", {"fields": OFFER_FIELDS}),
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

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = extra_context or {}
        campaign = self.get_object(request, unquote(object_id))
        if campaign is not None:
            extra_context["report"] = selectors.campaign_report(campaign=campaign)
            extra_context["status_moves"] = self._status_moves(campaign)
            extra_context["can_run"] = request.user.has_perm(RUN_PERMISSION) and campaign.status == "active"
            extra_context["can_send_test"] = request.user.has_perm(SEND_TEST_PERMISSION)
            extra_context["staff_email"] = request.user.email
            extra_context["can_edit"] = self.has_change_permission(request, campaign)
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return super().add_view(request, form_url, {**(extra_context or {}), "can_edit": True})

    @staticmethod
    def _status_moves(campaign: Campaign) -> list[tuple[str, str]]:
        from campaigns.services.campaigns import STATUS_MOVES

        labels = {"active": "Activate", "paused": "Pause", "archived": "Archive"}
        return [(status, labels[status]) for status in sorted(STATUS_MOVES[CampaignStatus(campaign.status)])]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(partial(preview_view, self)), name="campaigns_campaign_preview"),
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


def _back(campaign: Campaign) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))


@post_only
def preview_view(model_admin: CampaignAdmin, request: HttpRequest) -> HttpResponse:
    """The live preview: render the editor's current (unsaved) templates for a customer, as JSON."""
    if not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)):
        raise PermissionDenied
    data = request.POST
    trigger = data.get("trigger", "")
    params = {}
    if trigger in TRIGGERS:
        for param in TRIGGERS[trigger].params:
            raw = data.get(param_field_name(trigger, param.name), "")
            if raw.strip():
                params[param.name] = raw
    offer = {
        "bonus_points": data.get("offer_bonus_points") or None,
        "discount_percent": data.get("offer_discount_percent") or None,
        "code_prefix": data.get("offer_code_prefix") or None,
    }
    try:
        preview = campaign_preview(
            subject=data.get("subject", ""),
            body=data.get("body", ""),
            offer={key: value for key, value in offer.items() if value},
            trigger=trigger,
            params=params,
            customer_external_id=data.get("preview_customer", "").strip() or None,
        )
    except ApplicationError as error:
        return JsonResponse(error.as_dict(), status=error.status)
    return JsonResponse({"subject": preview.subject, "body": preview.body, "customer": preview.customer})


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
            "Run now: {queued} queued, {held_out} held out, {suppressed} suppressed, {deferred} deferred.".format(
                **counts
            ),
        )
    return _back(campaign)


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
        messages.success(request, f"The campaign is {campaign.status}.")
    return _back(campaign)


@post_only
def send_test_view(model_admin: CampaignAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    if not request.user.has_perm(SEND_TEST_PERMISSION):
        raise PermissionDenied
    campaign = _campaign_or_404(model_admin, request, object_id)
    to = request.POST.get("to", "").strip()
    customer = request.POST.get("preview_customer", "").strip() or None
    try:
        campaign_send_test(campaign_id=campaign.pk, to=to, customer_external_id=customer)
    except ApplicationError as error:
        messages.error(request, f"Test not sent: {error.message}")
    else:
        messages.success(request, f"Test sent to {to}.")
    return _back(campaign)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("uuid", "campaign", "customer", "channel", "status", "reason", "send_at", "sent_at")
    list_filter = ("status", "channel", "reason", "campaign")
    search_fields = ("uuid", "customer__external_id", "dedupe_key")
    search_help_text = "Message UUID, customer external id or dedupe key."
    list_select_related = ("campaign", "customer")
    show_full_result_count = False
    readonly_fields = [field.name for field in Message._meta.fields]


@admin.register(Attribution)
class AttributionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("purchase", "campaign", "message", "attributed_at")
    list_filter = ("campaign",)
    list_select_related = ("purchase", "campaign", "message")
    readonly_fields = ("purchase", "message", "campaign", "attributed_at")
    show_full_result_count = False


@admin.register(ContactPolicy)
class ContactPolicyAdmin(admin.ModelAdmin):
    """One record: the frequency cap and quiet hours for every campaign."""

    list_display = ("__str__", "max_messages", "cap_days", "max_defer_hours", "quiet_hours_start", "quiet_hours_end")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ContactPolicy.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
