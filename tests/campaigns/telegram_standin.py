"""A real HTTP server in the test process standing in for the Telegram Bot API.

It speaks the Bot API's shapes: ``POST /bot<token>/sendMessage`` with a JSON ``{"chat_id", "text"}``
answers ``{"ok": true, "result": {"message_id", "chat", "date", "text"}}``; a wrong token answers
401, an unknown method 404, both as ``{"ok": false, "error_code", "description"}``. Answers can be
scripted in turn: ``"blocked"`` (403, the user blocked the bot), ``("flood", seconds)`` (429 with
``parameters.retry_after``), ``"down"`` (502). It also builds the updates Telegram POSTs to a
bot's webhook.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.campaigns.http_standin import json_reply, serve

TOKEN = "123456:test-bot-token"
BOT_NAME = "ShopBot"


@dataclass
class BotApi:
    token: str = TOKEN
    script: list[Any] = field(default_factory=list)  # answers given in turn; then ok
    sent: list[dict[str, Any]] = field(default_factory=list)  # sendMessage requests answered ok
    requests: list[dict[str, Any]] = field(default_factory=list)  # every sendMessage request
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not path.startswith(f"/bot{self.token}/"):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method = path.rsplit("/", 1)[-1]
        if method != "sendMessage":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        with self.lock:
            self.requests.append(body)
            scripted = self.script.pop(0) if self.script else "ok"
            if scripted == "blocked":
                return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            if scripted == "down":
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            if isinstance(scripted, tuple) and scripted[0] == "flood":
                seconds = scripted[1]
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {seconds}",
                    "parameters": {"retry_after": seconds},
                }
            if not isinstance(body.get("chat_id"), int | str) or not body.get("text"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
            self.sent.append(body)
            message_id = len(self.sent)
        chat = {"id": int(body["chat_id"]), "first_name": "Ada", "type": "private"}
        return 200, {
            "ok": True,
            "result": {"message_id": message_id, "chat": chat, "date": int(time.time()), "text": body["text"]},
        }


def start_bot_api(**options: Any) -> BotApi:
    api = BotApi(**options)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            status, answer = api.answer(self.path, body if isinstance(body, dict) else {})
            json_reply(self, status, answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    api.server = serve(Handler)
    return api


def stop_bot_api(api: BotApi) -> None:
    if api.server is not None:
        api.server.shutdown()
        api.server.server_close()


_update_ids = iter(range(10_000, 1_000_000))


def message_update(chat_id: int, text: str, *, chat_type: str = "private") -> dict[str, Any]:
    """What Telegram POSTs to the webhook when someone writes to the bot (or presses Start)."""
    entities = [{"type": "bot_command", "offset": 0, "length": len(text.split(" ", 1)[0])}] if text[:1] == "/" else []
    return {
        "update_id": next(_update_ids),
        "message": {
            "message_id": 7,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada", "language_code": "en"},
            "chat": {"id": chat_id, "first_name": "Ada", "type": chat_type},
            "date": int(time.time()),
            "text": text,
            "entities": entities,
        },
    }


def blocked_update(chat_id: int) -> dict[str, Any]:
    """What Telegram POSTs when the person blocks the bot."""
    chat = {"id": chat_id, "first_name": "Ada", "type": "private"}
    user = {"id": chat_id, "is_bot": False, "first_name": "Ada"}
    bot = {"id": 123456, "is_bot": True, "first_name": "Shop", "username": BOT_NAME}
    return {
        "update_id": next(_update_ids),
        "my_chat_member": {
            "chat": chat,
            "from": user,
            "date": int(time.time()),
            "old_chat_member": {"user": bot, "status": "member"},
            "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
        },
    }
