"""docs/API.md runs as written: every command of its shell blocks, in document order, against a live
server, with real curl, so a wrong path, field, quote or answer in the guide fails here.

``$CRM`` is the live server's address; ``$KEY`` is the key the guide's own ``create_api_key``
command prints (run as printed, from the checkout, on the test database); ``$CAMPAIGN`` is the id
the guide's campaign create answers.
"""

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from retention_crm.api.models import ApiKey
from tests.api import doc_examples
from tests.api.doc_examples import Example, commands, examples, fenced_blocks, shape_differences

GUIDE = Path(settings.BASE_DIR) / "docs" / "API.md"
TIMEOUT = 120

# Variables later examples use, taken from an earlier answer: (method, path) -> (variable, field).
CAPTURES = {("POST", "/api/v1/campaigns"): ("CAMPAIGN", "id")}

# The curl the examples run: the guide's command line as written, the answer's body, headers and
# status written where the test reads them (options after the guide's, so they take precedence).
CURL_PRELUDE = """set -u
curl() {
    command curl "$@" --silent --show-error --max-time 60 \\
        --output "$DOC_ANSWER" --dump-header "$DOC_HEADERS" --write-out '%{http_code}'
}
"""


def guide_examples() -> list[Example]:
    return examples(GUIDE.read_text(encoding="utf-8"))


def _database_url() -> str:
    """The test database as a DATABASE_URL, for the guide's manage.py commands."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{quote(db['NAME'], safe='')}"


def _environment(**extra: str) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if name.lower() not in {"http_proxy", "https_proxy"}
    }
    environment.update(NO_PROXY="*", no_proxy="*", **extra)
    return environment


def _run_command(example: Example, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A command that is not curl (e.g. creating the key), run as printed from the checkout.
    Returns its output and the CRM / KEY it leaves set."""
    script = f'set -eu\n{example.command}\nprintf \'\\0%s\\0%s\' "${{CRM-}}" "${{KEY-}}"\n'
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=settings.BASE_DIR,
        env=_environment(DATABASE_URL=_database_url(), **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"{example} failed ({result.returncode}):\n{result.stderr}"
    output, crm, key = result.stdout.split("\0")
    assert "Traceback" not in result.stderr, f"{example}:\n{result.stderr}"
    return output, {"CRM": crm, "KEY": key}


def _check_new_key(example: Example, key: str) -> None:
    """A create_api_key command printed a key with the scopes it names."""
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", key), f"{example} printed {key!r}, not a key"
    named = re.search(r"--scopes((?:\s+[a-z_]+)+)", example.command)
    assert named, f"{example}: a key with no --scopes"
    scopes = sorted(set(named[1].split()))
    stored = ApiKey.objects.get(prefix=key[:8])
    assert stored.revoked_at is None
    assert sorted(stored.scopes) == scopes, f"{example}: the key has {stored.scopes}, the guide says {scopes}"


def _run_curl(example: Example, env: dict[str, str], tmp_path: Path) -> tuple[int, str, str]:
    answer, headers = tmp_path / "answer", tmp_path / "headers"
    answer.unlink(missing_ok=True)
    result = subprocess.run(
        ["bash", "-c", CURL_PRELUDE + example.command],
        env=_environment(DOC_ANSWER=str(answer), DOC_HEADERS=str(headers), **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"{example}: curl failed ({result.returncode}):\n{result.stderr}"
    status = result.stdout.strip()
    assert re.fullmatch(r"\d{3}", status), f"{example}: not one request? curl wrote {result.stdout!r}"
    body = answer.read_text(encoding="utf-8") if answer.exists() else ""
    return int(status), body, headers.read_text(encoding="latin-1")


def test_every_example_runs_as_written_in_order(live_server, tmp_path, settings):
    settings.TELEGRAM_BOT_NAME = "ShopBot"  # the guide's Telegram deep link names the shop's bot
    env: dict[str, str] = {}
    ran = 0
    for example in guide_examples():
        if not example.is_curl:
            output, variables = _run_command(example, env)
            if "create_api_key" in example.command:
                # `export KEY=$(... create_api_key ...)` keeps the key; the bare command prints it.
                _check_new_key(example, variables["KEY"] if "KEY=$(" in example.command else output.strip())
            if variables["KEY"]:
                env["KEY"] = variables["KEY"]
            env["CRM"] = live_server.url  # the guide's CRM is its own server; the test's is this one
            continue

        assert env.get("KEY"), f"{example}: the guide uses $KEY before a command of its own sets it"
        assert example.url.startswith("$CRM/api/"), f"{example}: examples address the API under $CRM"
        status, body, headers = _run_curl(example, env, tmp_path)
        ran += 1
        expected = f"{example.status}" if example.status else "a 2xx"
        assert (status == example.status) if example.status else (200 <= status < 300), (
            f"{example}: the guide says {expected}, the server answered {status}:\n{body}"
        )
        assert re.search(r"(?im)^content-type: application/json", headers), f"{example}: not JSON:\n{headers}"
        answer = json.loads(body)
        if example.shows_response:
            differences = shape_differences(example.response, answer)
            assert not differences, (
                f"{example}: the answer shown differs from the server's:\n"
                + "\n".join(differences)
                + f"\n\nThe server answered:\n{json.dumps(answer, indent=2)}"
            )
        if example.status and example.status >= 400:
            assert set(answer) == {"error"}, f"{example}: an error in the API's shape: {answer}"
        capture = CAPTURES.get((example.method, example.path))
        if capture and isinstance(answer, dict) and capture[1] in answer:
            env[capture[0]] = str(answer[capture[1]])
    assert ran >= 20, f"only {ran} curl examples ran; did the parser miss the guide's blocks?"


# --- What the guide covers, and how its commands are written --------------------------------------

# (method, path, whether the guide must show the answer)
COVERED = [
    ("PUT", r"/api/v1/customers/[^/]+", False),
    ("GET", r"/api/v1/customers/[^/]+", True),
    ("GET", r"/api/v1/customers", False),
    ("POST", r"/api/v1/customers/[^/]+/consents", False),
    ("PUT", r"/api/v1/carts/[^/]+", True),
    ("POST", r"/api/v1/purchases", True),
    ("POST", r"/api/v1/purchases/bulk", True),
    ("POST", r"/api/v1/purchases/[^/]+/refund", True),
    ("GET", r"/api/v1/customers/[^/]+/loyalty", True),
    ("POST", r"/api/v1/customers/[^/]+/loyalty/redeem", True),
    ("POST", r"/api/v1/customers/[^/]+/loyalty/adjust", True),
    ("POST", r"/api/v1/nps", True),
    ("POST", r"/api/v1/campaigns", True),
    ("GET", r"/api/v1/campaigns", False),
    ("PATCH", r"/api/v1/campaigns/\$CAMPAIGN", False),
    ("POST", r"/api/v1/campaigns/\$CAMPAIGN/run", True),
    ("GET", r"/api/v1/campaigns/\$CAMPAIGN/report", True),
    ("GET", r"/api/v1/campaigns/\$CAMPAIGN/entries", True),
    ("GET", r"/api/v1/customers/[^/]+/messages", True),
    ("GET", r"/api/v1/metrics/retention", True),
    ("GET", r"/api/v1/metrics/summary", True),
    ("GET", r"/api/v1/metrics/cohorts", True),
    ("GET", r"/api/v1/metrics/rfm", True),
    ("GET", r"/api/v1/metrics/rfm/flow", True),
    ("POST", r"/api/v1/customers/[^/]+/erase", True),
    ("POST", r"/api/v1/customers/[^/]+/telegram-link", True),
]


@pytest.mark.parametrize(("method", "path", "with_answer"), COVERED)
def test_the_guide_shows_this_endpoint(method, path, with_answer):
    shown = [
        example
        for example in guide_examples()
        if example.is_curl and example.method == method and re.fullmatch(path, example.path)
    ]
    assert shown, f"docs/API.md has no example of {method} {path}"
    if with_answer:
        assert any(example.shows_response for example in shown), f"docs/API.md shows no answer of {method} {path}"


def test_commands_use_the_projects_virtualenv():
    """`python manage.py` needs the project's packages on the reader's PATH; the checkout's own
    virtualenv (what `make run` and `make test` create) has them."""
    text = GUIDE.read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w/.])python3? (?:\./)?manage\.py", text), "a bare python manage.py in the guide"
    for block in fenced_blocks(text):
        if block.lang in doc_examples.SHELL_LANGUAGES:
            for line in block.body.splitlines():
                if "manage.py" in line:
                    assert ".venv/bin/python manage.py" in line, f"docs line {block.line}: {line}"


def test_every_json_block_is_json():
    blocks = [block for block in fenced_blocks(GUIDE.read_text(encoding="utf-8")) if block.lang == "json"]
    assert blocks
    for block in blocks:
        try:
            json.loads(block.body)
        except json.JSONDecodeError as error:
            pytest.fail(f"docs line {block.line}: not JSON ({error})")


# --- The reader of the guide -------------------------------------------------------------------

SAMPLE = """Intro.

```sh
curl -X PUT "$CRM/api/v1/carts/c-1" -H "Authorization: Api-Key $KEY" \\
  -H "Content-Type: application/json" -d '{
    "customer": "a",
    "items": []
  }'
curl "$CRM/api/v1/customers?tag=vip&limit=5" -H "Authorization: Api-Key $KEY"
# 404 not_found
```

```json
{"error": {"code": "not_found"}}
```

```sh
.venv/bin/python manage.py create_api_key "x" --scopes read
```

Some prose.

```json
{"not": "an answer"}
```
"""


def test_the_reader_splits_commands_and_reads_statuses_and_answers():
    found = examples(SAMPLE)
    assert [example.line for example in found] == [4, 9, 18]
    put, get, key = found
    assert put.method == "PUT" and put.path == "/api/v1/carts/c-1" and put.status is None
    assert json.loads(put.words[-1]) == {"customer": "a", "items": []}
    assert not put.shows_response
    assert get.method == "GET" and get.path == "/api/v1/customers" and get.status == 404
    assert get.response == {"error": {"code": "not_found"}}
    assert not key.is_curl and not key.shows_response  # prose between: that JSON answers nothing


def test_the_reader_refuses_a_command_with_an_open_quote():
    block = fenced_blocks('```sh\ncurl -d \'{"a": 1}\n```\n')[0]
    with pytest.raises(ValueError, match="never ends"):
        commands(block)


def test_shape_differences_name_missing_and_extra_keys_at_any_depth():
    shown = {"a": 1, "b": {"c": "x", "d": [{"e": 1}]}, "reasons": {"sent:x": 1}, "n": None}
    assert shape_differences(shown, {"a": 2, "b": {"c": "y", "d": [{"e": 5}, {"f": 1}]}, "reasons": {}, "n": 3}) == []
    problems = shape_differences(shown, {"a": 2, "b": {"c": "y", "z": 1, "d": [{"f": 1}]}, "reasons": {}, "n": {}})
    assert problems == [
        "answer.b: keys the guide leaves out ['z'], keys the server does not answer []",
        "answer.b.d[0]: keys the guide leaves out ['f'], keys the server does not answer ['e']",
    ]
    assert shape_differences({"a": "1.00"}, {"a": 1.0}) == [
        "answer.a: the guide shows a string '1.00', the server answers a number 1.0"
    ]
    assert shape_differences([{"a": 1}], [{"b": 1}])
    assert shape_differences({"a": {}}, {"a": []})


def test_captured_variables_come_from_the_guides_own_requests():
    (method, path), (variable, _) = next(iter(CAPTURES.items()))
    requests = [(example.method, example.path) for example in guide_examples() if example.is_curl]
    assert (method, path) in requests
    first_use = next(i for i, example in enumerate(guide_examples()) if f"${variable}" in example.command)
    created = next(i for i, example in enumerate(guide_examples()) if example.is_curl and example.path == path)
    assert created < first_use, f"${variable} is used before the example that answers it"
