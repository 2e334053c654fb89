"""API v1 campaign paths (SPEC §6), mounted at api/v1/; with or without a trailing slash."""

from django.urls import re_path

from campaigns import api

CAMPAIGN_ID = r"(?P<campaign_id>[0-9]+)"

urlpatterns = [
    re_path(r"^campaigns/?$", api.CampaignListApi.as_view(), name="campaign-list"),
    re_path(r"^campaigns/events/?$", api.ProviderEventsApi.as_view(), name="campaign-events"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/?$", api.CampaignDetailApi.as_view(), name="campaign-detail"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/run/?$", api.CampaignRunApi.as_view(), name="campaign-run"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/report/?$", api.CampaignReportApi.as_view(), name="campaign-report"),
]
