"""A real HTTP server in the test process standing in for an SMS/push/webhook provider.

It records every request with its ``Idempotency-Key`` and, like a provider honouring the key,
counts a key's first request as the delivery and later ones as duplicates it absorbed. Answers can
be scripted (a list of statuses to give in turn) and slowed down (seconds per request).
"""

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.campaigns.http_standin import json_reply, serve


@dataclass
class Received:
    key: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Sink:
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/messages"

    def keys(self) -> Counter:
        with self.lock:
            return Counter(item.key for item in self.received)

    def delivered(self) -> set[str]:
        """Distinct idempotency keys: what the provider delivered, once each."""
        return set(self.keys())

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.keys().values())

    def count(self) -> int:
        with self.lock:
            return len(self.received)


def start_sink(**options: Any) -> Sink:
    sink = Sink(**options)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if sink.delay:
                threading.Event().wait(sink.delay)
            with sink.lock:
                status = sink.statuses.pop(0) if sink.statuses else 200
                if status == 200:
                    sink.received.append(
                        Received(
                            key=self.headers.get("Idempotency-Key", ""),
                            headers={name.lower(): value for name, value in self.headers.items()},
                            body=json.loads(raw or b"{}"),
                        )
                    )
            json_reply(self, status, {"id": f"provider-{len(sink.received)}"} if status == 200 else {"error": "no"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    sink.server = serve(Handler)
    return sink
