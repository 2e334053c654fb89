"""The Telegram bot's webhook: ``POST /telegram/webhook/<TELEGRAM_WEBHOOK_SECRET>`` (SPEC §4.2).

The secret in the path is what proves the request comes from Telegram (it is registered with the
Bot API's ``setWebhook``): a wrong one, or none configured, answers 404 as if nothing were there.
A body that is not a JSON object answers 400; every update we ignore answers 200, so Telegram does
not deliver it again. The bot's reply goes back in the webhook's answer (the Bot API runs a
``{"method": "sendMessage", ...}`` it receives there), which costs no request of our own.
"""

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.services.telegram import telegram_update_handle
from retention_crm.api.errors import error_body

MAX_UPDATE_BYTES = 1_000_000


@csrf_exempt
@require_POST
def telegram_webhook(request: HttpRequest, secret: str) -> HttpResponse:
    expected = settings.TELEGRAM_WEBHOOK_SECRET
    if not expected or not constant_time_compare(secret, expected):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    if len(request.body) > MAX_UPDATE_BYTES:
        return JsonResponse(error_body("too_large", "The update is too large."), status=413)
    try:
        update = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse(error_body("invalid", "The body must be JSON."), status=400)
    if not isinstance(update, dict):
        return JsonResponse(error_body("invalid", "The update must be a JSON object."), status=400)
    reply = telegram_update_handle(update=update)
    if reply is None:
        return JsonResponse({})
    return JsonResponse({"method": "sendMessage", "chat_id": reply.chat_id, "text": reply.text})
