"""Backends for development and tests: print, append to a file, or keep in memory.

They never fail and deliver in-process, so the sender records their outcomes per batch.
"""

import json
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings

from campaigns.channels.base import ChannelBackend, Outgoing

# locmem: everything "sent" in this process, like django.core.mail.outbox.
outbox: list[dict[str, Any]] = []
_outbox_lock = threading.Lock()


class LocmemChannel(ChannelBackend):
    confirm_each = False

    def __init__(self, **options: object) -> None:
        pass

    def send(self, message: Outgoing) -> str:
        with _outbox_lock:
            outbox.append(message.payload())
        return ""


class ConsoleChannel(ChannelBackend):
    confirm_each = False

    def __init__(self, *, stream: TextIO | None = None, **options: object) -> None:
        self.stream = stream or sys.stdout

    def send(self, message: Outgoing) -> str:
        self.stream.write(f"--- {message.channel} to {message.to} ({message.uuid})\n")
        if message.subject:
            self.stream.write(f"{message.subject}\n")
        self.stream.write(f"{message.body}\n")
        self.stream.flush()
        return ""


class FileChannel(ChannelBackend):
    """One JSON line per message in ``<CAMPAIGN_FILE_DIR>/<channel>.jsonl``."""

    confirm_each = False

    def __init__(self, *, directory: str = "", **options: object) -> None:
        self.directory = Path(directory or settings.CAMPAIGN_FILE_DIR)
        self.handle: TextIO | None = None
        self.channel = ""

    def send(self, message: Outgoing) -> str:
        if self.handle is None or self.channel != message.channel:
            self.close()
            self.directory.mkdir(parents=True, exist_ok=True)
            self.channel = message.channel
            self.handle = (self.directory / f"{message.channel}.jsonl").open("a", encoding="utf-8")
        self.handle.write(json.dumps(message.payload()) + "\n")
        return ""

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
