"""What the local provider stand-ins (sink.py, telegram_standin.py) share: a JSON answer and a
threaded server on a free port of this machine."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def json_reply(handler: BaseHTTPRequestHandler, status: int, answer: Any) -> None:
    payload = json.dumps(answer).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """The server, answering in threads of this process until ``shutdown()``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
