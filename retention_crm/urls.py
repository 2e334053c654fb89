from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns.views import unsubscribe
from retention_crm.api.errors import json_not_found
from retention_crm.health import healthz

admin.site.site_header = "retention_crm"
admin.site.site_title = "retention_crm"
admin.site.index_title = "Customers, campaigns and retention"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/metrics/", include("metrics.urls")),
    path("api/v1/", include("campaigns.urls")),
    path("api/v1/", include("customers.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
    re_path(r"^unsubscribe/(?P<token>[^/]+)/?$", unsubscribe, name="campaigns-unsubscribe"),
    re_path(r"^api/", json_not_found),  # unknown API paths answer JSON, also while DEBUG is on
]

# Unknown URLs and crashes under /api/ answer in the API's JSON error shape.
handler400 = "retention_crm.api.errors.json_bad_request"
handler404 = "retention_crm.api.errors.json_not_found"
handler500 = "retention_crm.api.errors.json_server_error"
