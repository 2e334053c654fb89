from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path, reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns.telegram_views import telegram_webhook
from campaigns.views import unsubscribe
from retention_crm.api.errors import json_not_found
from retention_crm.health import healthz

admin.site.site_header = "retention_crm"
admin.site.site_title = "retention_crm"
admin.site.index_title = "Customers, campaigns and retention"
# The admin's "View site" link: "/" below sends staff on to the page they can use.
admin.site.site_url = "/"

DASHBOARD_PERMISSION = "metrics.view_dashboard"


def home(request: HttpRequest) -> HttpResponseRedirect:
    """The site has no public front page: staff who may read the dashboard land on it, everyone
    else on the admin's index (which asks for a login first)."""
    if request.user.is_active and request.user.is_staff and request.user.has_perm(DASHBOARD_PERMISSION):
        return HttpResponseRedirect(reverse("admin:metrics_dashboard_changelist"))
    return HttpResponseRedirect(reverse("admin:index"))


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    # Browsers ask for /favicon.ico on any page that names no icon (the API's docs, error pages).
    return HttpResponseRedirect(static("customers/favicon.svg"))


urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/metrics/", include("metrics.urls")),
    path("api/v1/", include("campaigns.urls")),
    path("api/v1/", include("customers.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
    re_path(r"^unsubscribe/(?P<token>[^/]+)/?$", unsubscribe, name="campaigns-unsubscribe"),
    # The customer's own pages behind a message's links: /c/ /o/ /preferences/ /nps/ (SPEC §4.2).
    path("", include("campaigns.content.urls")),
    re_path(r"^telegram/webhook/(?P<secret>[^/]+)/?$", telegram_webhook, name="telegram-webhook"),
    re_path(r"^api/", json_not_found),  # unknown API paths answer JSON, also while DEBUG is on
]

# Unknown URLs and crashes under /api/ answer in the API's JSON error shape.
handler400 = "retention_crm.api.errors.json_bad_request"
handler404 = "retention_crm.api.errors.json_not_found"
handler500 = "retention_crm.api.errors.json_server_error"
