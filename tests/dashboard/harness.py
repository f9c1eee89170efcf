"""Helpers of the dashboard tests: Debian's chromium, raw HTTP with the dashboard's cookie, the
login form's CSRF token, and screenshots.

httpx keeps no `Secure` cookie over plain http (the standard library's cookie policy), while
Chromium does for 127.0.0.1 (a potentially trustworthy origin); so the raw-HTTP client here
carries the session cookie itself.
"""

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page

ADMIN_KEY = "dashboard-admin-key-for-tests"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
COOKIE = "tether_dashboard"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


class Dashboard:
    """Raw HTTP to one server as one browser would make it, its session cookie kept by hand."""

    def __init__(self, base_url: str, **headers: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30)
        self.cookie: str | None = None

    def _keep(self, answer: httpx.Response) -> httpx.Response:
        for header in answer.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name == COOKIE:
                value = rest.split(";", 1)[0]
                self.cookie = value.strip('"') or None  # deleted: `=""; Max-Age=0`
        return answer

    def _headers(self) -> dict[str, str]:
        return {"cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self._keep(self.http.get(path, headers=self._headers() | headers))

    def post(self, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
        return self._keep(self.http.post(path, data=data, headers=self._headers() | headers))

    def login(self, key: str = ADMIN_KEY) -> httpx.Response:
        form = self.get("/dashboard/login")
        return self.post(
            "/dashboard/login", {"key": key, "csrf_token": csrf_of(form.text), "next": "/dashboard"}
        )

    def select(self, project_id: str) -> None:
        page = self.get("/dashboard")
        answer = self.post(
            "/dashboard/project", {"project": project_id, "csrf_token": csrf_of(page.text)}
        )
        assert answer.status_code == 303, answer.text

    def close(self) -> None:
        self.http.close()


def shot(page: Page, name: str) -> None:
    """A screenshot of the whole page, for people to look at (tests/.artifacts, git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
