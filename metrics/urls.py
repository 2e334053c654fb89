"""Metrics API v1 paths (SPEC §6), included under ``api/v1/metrics/``; a trailing slash answers the same."""

from django.urls import re_path

from metrics import api

urlpatterns = [
    re_path(r"^retention/?$", api.RetentionApi.as_view(), name="metrics-retention"),
    re_path(r"^summary/?$", api.SummaryApi.as_view(), name="metrics-summary"),
    re_path(r"^cohorts/?$", api.CohortsApi.as_view(), name="metrics-cohorts"),
    re_path(r"^rfm/?$", api.RfmApi.as_view(), name="metrics-rfm"),
    re_path(r"^rfm/flow/?$", api.RfmFlowApi.as_view(), name="metrics-rfm-flow"),
]
