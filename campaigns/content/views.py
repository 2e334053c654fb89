"""The customer's own pages behind a message's signed links (SPEC §4.2): the click redirect, the
open pixel, the preference centre and the NPS thank-you page.

The signed token is the authorisation: there is no login. The preference centre and the NPS
comment are forms posted from our own page, so Django's CSRF check (a cookie and a form token,
no session needed) applies to them as to any form. A tampered or unknown link answers 400.
"""

import base64

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from campaigns.content.links import PLACEHOLDER
from campaigns.content.nps import nps_link_answer, nps_link_comment
from campaigns.content.preferences import preferences_customer, preferences_get, preferences_save
from campaigns.content.tracking import message_click_follow, message_open_record
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_CHOICES = 100  # more ticked boxes than any page shows: a forged post


def _invalid(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    return render(request, "campaigns/content/link_invalid.html", {"message": error.message}, status=400)


@never_cache
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    """Record the first click, then 302 to the address our email linked to (and only there)."""
    try:
        url = message_click_follow(token=token, record=request.method == "GET")
    except ApplicationError as error:
        return _invalid(request, error)
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"  # the token stays ours
    return response


@never_cache
@require_http_methods(["GET"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    try:
        message_open_record(token=token)
    except ApplicationError:
        return HttpResponse(status=400)
    return HttpResponse(PIXEL, content_type="image/gif")


def _choices(request: HttpRequest, name: str) -> set[str]:
    values = request.POST.getlist(name)
    if len(values) > MAX_CHOICES:
        raise v.invalid(name, "too many choices")
    for value in values:
        if problem := v.text_problem(value):
            raise v.invalid(name, problem)
    return set(values)


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = preferences_customer(token=token)
        if request.method == "POST":
            preferences_save(
                customer=customer, channels=_choices(request, "channel"), topic_codes=_choices(request, "topic")
            )
            # Post/redirect/get: a reload does not post again.
            url = reverse("content-preferences", kwargs={"token": PLACEHOLDER}).removesuffix(PLACEHOLDER)
            return HttpResponseRedirect(f"{url}{token}?saved=1")
    except ApplicationError as error:
        return _invalid(request, error)
    return render(
        request,
        "campaigns/content/preferences.html",
        {"preferences": preferences_get(customer=customer), "saved": request.GET.get("saved") == "1"},
    )


@never_cache
@require_http_methods(["GET", "POST"])
def nps(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the click on a score records it and thanks; POST: the optional comment."""
    try:
        if request.method == "POST":
            result = nps_link_comment(token=token, comment=request.POST.get("comment", ""))
            return render(request, "campaigns/content/nps_thanks.html", {"result": result, "commented": True})
        result = nps_link_answer(token=token)
    except ApplicationError as error:
        if error.code == "invalid_token":
            return _invalid(request, error)
        return render(
            request, "campaigns/content/nps_thanks.html", {"error": error.message, "token": token}, status=400
        )
    return render(request, "campaigns/content/nps_thanks.html", {"result": result, "token": token})
