"""The public unsubscribe page: GET shows a confirmation, POST unsubscribes.

RFC 8058 one-click: mail providers POST ``List-Unsubscribe=One-Click`` to the link with no cookies
and no CSRF token, so the view is CSRF-exempt; the signed token is the authorisation. A tampered or
unknown token answers 400.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.services import unsubscribe_confirm, unsubscribe_target
from retention_crm.errors import ApplicationError


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method == "POST":
            target = unsubscribe_confirm(token=token)
            return render(request, "campaigns/unsubscribed.html", {"target": target})
        target = unsubscribe_target(token=token)
    except ApplicationError as error:
        return render(request, "campaigns/unsubscribe_invalid.html", {"message": error.message}, status=400)
    return render(request, "campaigns/unsubscribe.html", {"target": target, "token": token})
