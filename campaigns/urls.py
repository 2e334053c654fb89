"""API v1 campaign paths (SPEC §6), mounted at api/v1/; with or without a trailing slash."""

from django.urls import re_path

from campaigns import api
from retention_crm.api.path_ids import path_ids_checked

CAMPAIGN_ID = r"(?P<campaign_id>[0-9]+)"

urlpatterns = [
    re_path(r"^campaigns/?$", api.CampaignListApi.as_view(), name="campaign-list"),
    re_path(r"^campaigns/events/?$", api.ProviderEventsApi.as_view(), name="campaign-events"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/?$", api.CampaignDetailApi.as_view(), name="campaign-detail"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/run/?$", api.CampaignRunApi.as_view(), name="campaign-run"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/report/?$", api.CampaignReportApi.as_view(), name="campaign-report"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/entries/?$", api.CampaignEntriesApi.as_view(), name="campaign-entries"),
    re_path(
        r"^customers/(?P<external_id>[^/]+)/messages/?$", api.CustomerMessagesApi.as_view(), name="customer-messages"
    ),
]
urlpatterns = path_ids_checked(urlpatterns)  # a NUL or a lone surrogate in an id: 400
