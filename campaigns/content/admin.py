"""Staff screens for content (SPEC §4.2): the shop's email layout (one record) and the topics.

Imported by ``campaigns.admin`` so the admin site finds them.
"""

import re
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from campaigns.content.models import COLOUR_PATTERN, EmailLayout, Topic, TopicPreferenceEvent
from customers.admin import CustomerHistoryAdmin


class EmailLayoutForm(forms.ModelForm):
    logo_url = forms.URLField(
        required=False, assume_scheme="https", label="Logo URL", help_text="An https address of the logo image"
    )

    class Meta:
        model = EmailLayout
        fields = (
            "shop_name",
            "logo_url",
            "brand_colour",
            "text_colour",
            "background_colour",
            "shop_address",
            "footer_text",
            "track_opens",
        )
        widgets = {
            "brand_colour": forms.TextInput(attrs={"type": "color"}),
            "text_colour": forms.TextInput(attrs={"type": "color"}),
            "background_colour": forms.TextInput(attrs={"type": "color"}),
            "shop_address": forms.Textarea(attrs={"rows": 3}),
            "footer_text": forms.Textarea(attrs={"rows": 2}),
        }

    def _colour(self, name: str) -> str:
        value = (self.cleaned_data.get(name) or "").strip()
        if not re.fullmatch(COLOUR_PATTERN, value):
            raise forms.ValidationError("A colour as #rrggbb, e.g. #1f6feb.")
        return value.lower()

    def clean_brand_colour(self) -> str:
        return self._colour("brand_colour")

    def clean_text_colour(self) -> str:
        return self._colour("text_colour")

    def clean_background_colour(self) -> str:
        return self._colour("background_colour")

    def clean_logo_url(self) -> str:
        url = self.cleaned_data.get("logo_url") or ""
        if url and not url.startswith("https://"):
            raise forms.ValidationError("Use an https:// address: mail clients block images over http.")
        return url


@admin.register(EmailLayout)
class EmailLayoutAdmin(admin.ModelAdmin):
    """One record: the base layout of every HTML email (logo, colours, address, footer)."""

    form = EmailLayoutForm
    list_display = ("__str__", "shop_name", "brand_colour", "track_opens", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not EmailLayout.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        # One record: the list is its edit page (created with the defaults on first visit).
        if self.has_view_or_change_permission(request):
            layout, _ = EmailLayout.objects.get_or_create(pk=EmailLayout.SINGLETON_ID)
            return HttpResponseRedirect(reverse("admin:campaigns_emaillayout_change", args=[layout.pk]))
        return super().changelist_view(request, extra_context)


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    """Kinds of message a customer may opt out of on the preference centre; every campaign has one."""

    list_display = ("name", "code", "description", "position")
    ordering = ("position", "name")
    search_fields = ("name", "code")

    def get_readonly_fields(self, request: HttpRequest, obj: Topic | None = None) -> tuple[str, ...]:
        # Campaigns and customers' choices name the code: it stays once chosen.
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Topic | None = None) -> bool:
        # Customers' opt-outs and campaigns refer to it: a topic is kept.
        return False


@admin.register(TopicPreferenceEvent)
class TopicPreferenceEventAdmin(CustomerHistoryAdmin):
    """Every topic choice customers made (preference centre, admin, API): the history, read-only."""

    list_display = ("customer", "topic", "subscribed", "source", "recorded_at")
    list_filter = ("topic", "subscribed", "source")
    list_select_related = ("customer", "topic")
