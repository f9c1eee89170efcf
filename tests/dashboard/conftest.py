"""The dashboard driven by a real browser: Debian's chromium under Playwright (never a
downloaded build), one browser for the whole session, a fresh context (cookies, storage) per
test, against one server with an admin key and two projects, alpha and beta.

The server runs background jobs itself (embedded mode), one at a time (WORKER_CONCURRENCY=1):
a job started behind a slow one stays `queued` until it is let through, which is how a test
gets a queued job to cancel. Its database is its own: the keys made here end keyless mode.
Server and database are the package's: they stop when its tests are done, not at the end of
the whole suite.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from app.config import Settings
from tests.auth.harness import make_key
from tests.conftest import CHROMIUM, SMALL_POOL
from tests.dashboard.harness import ADMIN_KEY, Dashboard
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, migrated_database, query, running_server


@dataclass(frozen=True)
class Project:
    name: str
    id: str
    key: str


@pytest.fixture(scope="package")
def dash_settings(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    with migrated_database("postgres", str(tmp_path_factory.mktemp("dashboard"))) as url:
        yield Settings(
            database_url=url,
            upstream_base_url=f"{fake_upstream.url}/v1",
            upstream_timeout=60.0,
            admin_api_key=ADMIN_KEY,
            auth_cache_seconds=0.2,
            worker_concurrency=1,
            job_cancel_poll=0.1,
            # Its sweeper must leave alone the queued job of test_workers' Celery-mode server
            # (on this database, with no worker); its own jobs are handed over at once.
            job_requeue_after=600.0,
            webhook_allow_http=True,
            webhook_allow_private=True,
            **SMALL_POOL,
        )


def _project(settings: Settings, name: str) -> Project:
    _, key = make_key(settings, name)
    [(project_id,)] = query(
        settings.database_url, "SELECT id FROM projects WHERE name = :n", n=name
    )
    return Project(name, str(project_id), key)


@pytest.fixture(scope="package")
def alpha(dash_settings: Settings) -> Project:
    return _project(dash_settings, f"alpha-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="package")
def beta(dash_settings: Settings) -> Project:
    return _project(dash_settings, f"beta-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="package")
def dash_server(dash_settings: Settings, alpha: Project, beta: Project) -> Iterator[ServerThread]:
    with running_server(dash_settings) as srv:
        yield srv


@pytest.fixture
def as_alpha(dash_server: ServerThread, alpha: Project) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{dash_server.url}/v1", api_key=alpha.key, max_retries=0) as c:
        yield c


@pytest.fixture
def as_beta(dash_server: ServerThread, beta: Project) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{dash_server.url}/v1", api_key=beta.key, max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def playwright(dash_server: ServerThread) -> Iterator[Playwright]:
    """Module-scoped (the browser tests live in one module: one browser for the run): while
    Playwright's sync API runs, its event loop counts as running on this thread, and
    asyncio.run (the harness's database helpers) refuses to start. So the server and its
    database come first, and Playwright stops before anything else needs asyncio.run."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM)
    yield browser
    browser.close()


class Tab:
    """A page in a context of its own, with the CSP violations and script errors it met."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.page: Page = context.new_page()
        self.base_url = base_url
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: object) -> None:
        text = getattr(message, "text", "")
        # A page answered 4xx on purpose (a refused filter) is not a problem of the page.
        if text.startswith("Failed to load resource"):
            return
        if "Content Security Policy" in text or getattr(message, "type", "") == "error":
            self.problems.append(text)

    def goto(self, path: str) -> Page:
        self.page.goto(self.base_url + path)
        return self.page


@pytest.fixture
def tab(browser: Browser, dash_server: ServerThread) -> Iterator[Tab]:
    """A page not logged in."""
    context = browser.new_context()
    yield Tab(context, dash_server.url)
    context.close()


@pytest.fixture(scope="module")
def logged_in(browser: Browser, dash_server: ServerThread, alpha: Project) -> dict[str, object]:
    """The cookies of a browser logged in with the admin key, project alpha selected."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{dash_server.url}/dashboard/login")
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Project").select_option(alpha.id)  # shown at once (dashboard.js)
    expect(page.get_by_role("heading", level=1)).to_contain_text(alpha.name)
    state: dict[str, object] = dict(context.storage_state())
    context.close()
    return state


@pytest.fixture
def admin(
    browser: Browser, dash_server: ServerThread, logged_in: dict[str, object]
) -> Iterator[Tab]:
    """A page logged in as the admin, project alpha selected; no CSP violation or script error
    may happen on it."""
    context = browser.new_context(storage_state=logged_in)  # type: ignore[arg-type]
    tab = Tab(context, dash_server.url)
    yield tab
    context.close()
    assert tab.problems == []


@pytest.fixture
def dashboard() -> Iterator[Callable[..., Dashboard]]:
    """Raw-HTTP visitors of a server (base URL, extra headers), closed after the test."""
    made: list[Dashboard] = []

    def make(base_url: str, **headers: str) -> Dashboard:
        made.append(Dashboard(base_url, **headers))
        return made[-1]

    yield make
    for visitor in made:
        visitor.close()
