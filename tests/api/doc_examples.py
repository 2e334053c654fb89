"""Reads the runnable examples out of a Markdown guide (docs/API.md).

Conventions the guide follows, so its examples can be run as written:
- every fenced ``sh`` block holds commands; a command may span lines (a trailing backslash, or a
  quoted ``-d '...'`` body over several lines);
- a comment line ``# 409`` (a status, optionally followed by words) right after a command says the
  command answers that status; without one it answers a 2xx;
- a fenced ``json`` block that follows a ``sh`` block with nothing but blank lines between shows the
  answer of that block's last command.
"""

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SHELL_LANGUAGES = {"sh", "shell", "bash", "console"}
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
STATUS_COMMENT = re.compile(r"^#\s*(?P<status>[1-5]\d\d)\b")
NO_ANSWER = object()


@dataclass
class Example:
    """One command of the guide, with what the guide says it answers."""

    command: str
    line: int  # 1-based line of the guide where the command starts
    status: int | None = None  # None: any 2xx
    response: Any = NO_ANSWER  # the JSON shown for it, if any

    @property
    def is_curl(self) -> bool:
        return self.words[0] == "curl"

    @property
    def words(self) -> list[str]:
        return shlex.split(self.command, comments=True)

    @property
    def shows_response(self) -> bool:
        return self.response is not NO_ANSWER

    @property
    def url(self) -> str:
        """The request's address as written, e.g. ``$CRM/api/v1/customers/shop-42``."""
        urls = [word for word in self.words[1:] if word.startswith("$CRM")]
        if len(urls) != 1:
            raise ValueError(f"line {self.line}: a curl example names exactly one $CRM address, got {urls}")
        return urls[0]

    @property
    def path(self) -> str:
        return urlsplit(self.url.removeprefix("$CRM")).path

    @property
    def method(self) -> str:
        words = self.words
        for flag in ("-X", "--request"):
            if flag in words:
                return words[words.index(flag) + 1].upper()
        return "POST" if any(word in ("-d", "--data", "--data-raw") for word in words) else "GET"

    def __str__(self) -> str:
        return f"docs line {self.line}: {self.command.splitlines()[0]}"


@dataclass
class Block:
    lang: str
    body: str
    line: int  # 1-based line of the block's first content line
    start: int  # offsets of the whole fence in the text
    end: int


def fenced_blocks(text: str) -> list[Block]:
    return [
        Block(
            lang=match["lang"].lower(),
            body=match["body"],
            line=text.count("\n", 0, match.start("body")) + 1,
            start=match.start(),
            end=match.end(),
        )
        for match in FENCE.finditer(text)
    ]


def _complete(command: str) -> bool:
    """The lines gathered so far are a whole command: no open quote, no trailing backslash."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def commands(block: Block) -> list[Example]:
    found: list[Example] = []
    pending: list[str] = []
    start = block.line
    for offset, line in enumerate(block.body.splitlines()):
        if not pending:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                status = STATUS_COMMENT.match(stripped)
                if status and found:
                    found[-1].status = int(status["status"])
                continue
            start = block.line + offset
        pending.append(line)
        if _complete("\n".join(pending)):
            found.append(Example(command="\n".join(pending), line=start))
            pending = []
    if pending:
        raise ValueError(f"docs line {start}: a command that never ends (an open quote?)")
    return found


def examples(text: str) -> list[Example]:
    """Every command of the guide's shell blocks, in document order, with the answers shown."""
    blocks = fenced_blocks(text)
    found: list[Example] = []
    for index, block in enumerate(blocks):
        if block.lang not in SHELL_LANGUAGES:
            continue
        block_commands = commands(block)
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if (
            block_commands
            and following is not None
            and following.lang == "json"
            and not text[block.end : following.start].strip()
        ):
            block_commands[-1].response = json.loads(following.body)
        found.extend(block_commands)
    return found


# Objects whose keys are data (a status:reason, a customer's free-form attributes), not field names.
DATA_KEYED = frozenset({"reasons", "attributes"})


def shape_differences(shown: Any, real: Any, where: str = "answer") -> list[str]:
    """Where the real answer's keys differ from the ones the guide shows, object by object.

    Lists are compared item by item when both have items; a null on either side matches anything
    (the field is there; whether it has a value depends on the data).
    """
    if shown is None or real is None:
        return []
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{where}: the guide shows an object, the server answers {type(real).__name__}"]
        if where.rsplit(".", 1)[-1] in DATA_KEYED:
            return []
        problems = []
        if set(shown) != set(real):
            missing = sorted(set(real) - set(shown))
            extra = sorted(set(shown) - set(real))
            problems.append(f"{where}: keys the guide leaves out {missing}, keys the server does not answer {extra}")
        for key in set(shown) & set(real):
            problems += shape_differences(shown[key], real[key], f"{where}.{key}")
        return problems
    if isinstance(shown, list):
        if not isinstance(real, list):
            return [f"{where}: the guide shows a list, the server answers {type(real).__name__}"]
        problems = []
        for position, (shown_item, real_item) in enumerate(zip(shown, real, strict=False)):
            problems += shape_differences(shown_item, real_item, f"{where}[{position}]")
        return problems
    if _kind(shown) != _kind(real):
        return [f"{where}: the guide shows {_kind(shown)} {shown!r}, the server answers {_kind(real)} {real!r}"]
    return []


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
