"""The customer's own pages (SPEC §4.2), mounted at the site's root like the unsubscribe page."""

from django.urls import re_path

from campaigns.content import views
from retention_crm.api.path_ids import path_ids_checked

TOKEN = r"(?P<token>[^/]+)"

urlpatterns = [
    re_path(rf"^c/{TOKEN}/?$", views.click, name="content-click"),
    re_path(rf"^o/{TOKEN}/?$", views.open_pixel, name="content-open"),
    re_path(rf"^preferences/{TOKEN}/?$", views.preferences, name="content-preferences"),
    re_path(rf"^nps/{TOKEN}/?$", views.nps, name="content-nps"),
]
urlpatterns = path_ids_checked(urlpatterns)  # a NUL or a lone surrogate in a token: 400
