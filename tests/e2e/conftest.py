"""Browser tests: Playwright for Python driving Debian's chromium against pytest-django's live server.

Playwright's own browser download cannot run here, so the tests launch the system chromium by
path (CHROMIUM, default /usr/bin/chromium). Later issues reuse these fixtures.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make to arrange
# data are still plain synchronous calls, so Django's async guard does not apply to them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"]
STAFF_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(executable):
        raise pytest.UsageError(f"Browser tests need chromium at {executable}; run `make browser`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", STAFF_PASSWORD)


@pytest.fixture
def admin_page(page: Page, live_server, admin_user) -> Page:
    """A page logged in to the admin as a superuser."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where a test's screenshots go: $SCREENSHOT_DIR when it is set (to look at them), else tmp_path."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
