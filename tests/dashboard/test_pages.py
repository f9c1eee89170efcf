"""The dashboard in a real browser: logging in, the responses table and its filters, a thread
with a fork, the jobs page's buttons, a live stream, and one project never showing another's
objects. Each page is saved as a screenshot under tests/.artifacts/."""

import re
import uuid
from typing import Any

import openai
from playwright.sync_api import Browser, Page, Request, expect

from tests.dashboard.conftest import Project, Tab
from tests.dashboard.harness import ADMIN_KEY, COOKIE, shot
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, poll_status, streamed_background, wait_until

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def rows(page: Page, table: str = "table.responses") -> list[str]:
    """The ids of a table's rows (their first cell's code)."""
    return page.locator(f"{table} tbody tr td:first-child code").all_inner_texts()


class TestLogin:
    def test_log_in_with_the_admin_key_and_out_again(
        self, tab: Tab, dash_server: ServerThread
    ) -> None:
        page = tab.goto("/dashboard/jobs")
        expect(page).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard%2Fjobs$"))
        shot(page, "login")

        page.get_by_label("Admin key").fill("not-the-admin-key")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("not the admin key")

        page.get_by_label("Admin key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{dash_server.url}/dashboard/jobs")  # where it was going
        [cookie] = [c for c in tab.context.cookies() if c["name"] == COOKIE]
        assert cookie["secure"]
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert ADMIN_KEY not in cookie["value"]

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/dashboard/login$"))
        tab.goto("/dashboard")
        expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))


class TestResponses:
    def test_filter_the_table_by_metadata(
        self, admin: Tab, as_alpha: openai.OpenAI, model: str
    ) -> None:
        red1 = as_alpha.responses.create(
            model=model, input="one", metadata={"team": "red", "run": "1"}
        )
        as_alpha.responses.create(model=model, input="two", metadata={"team": "blue"})
        red2 = as_alpha.responses.create(
            model=model, input="three", metadata={"team": "red", "run": "2"}
        )

        page = admin.goto("/dashboard/responses")
        page.get_by_label("Model").fill(model)
        page.get_by_label("Metadata filter 1").fill("team=red")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"metadata=team%3Dred"))
        assert rows(page) == [red2.id, red1.id]  # newest first
        shot(page, "responses-filtered")

        # The filter is kept in the form, with room for one more pair: all must match.
        expect(page.get_by_label("Metadata filter 1")).to_have_value("team=red")
        page.get_by_label("Metadata filter 2").fill("run=1")
        page.get_by_role("button", name="Filter").click()
        assert rows(page) == [red1.id]

        # The address is the filter: bookmarked, it shows the same rows.
        admin.goto(f"/dashboard/responses?model={model}&metadata=team%3Dred&metadata=run%3D2")
        assert rows(page) == [red2.id]
        admin.goto(f"/dashboard/responses?model={model}&status=failed")
        assert rows(page) == []
        admin.goto("/dashboard/responses?metadata=nonsense")
        expect(page.get_by_role("alert")).to_contain_text("is not key=value")

    def test_thread_with_a_fork_shows_both_branches(
        self, admin: Tab, as_alpha: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        thinker = f"{model}-tools"
        fake_upstream.script(
            thinker,
            tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}],
            reasoning_content="The user wants the weather; ask the tool.",
        )
        fake_upstream.script(model, reply="It is sunny in Paris.")
        first = as_alpha.responses.create(
            model=thinker,
            input="What is the weather in Paris?",
            tools=[WEATHER],  # type: ignore[list-item]
        )
        [call] = [item for item in first.output if item.type == "function_call"]
        answered = as_alpha.responses.create(
            model=model,
            previous_response_id=first.id,
            input=[
                {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}
            ],
        )
        forked = as_alpha.responses.create(
            model=model, previous_response_id=first.id, input="Never mind: and in Rome?"
        )
        last = as_alpha.responses.create(
            model=model, previous_response_id=answered.id, input="Thanks!"
        )
        as_alpha.responses.delete(answered.id)  # later turns chain through it: a tombstone

        page = admin.goto(f"/dashboard/responses/{last.id}")
        tree = page.locator("ul.tree")
        expect(tree.locator("a.current")).to_have_text(last.id)
        expect(tree.get_by_role("link", name=first.id)).to_be_visible()
        expect(tree.get_by_role("link", name=forked.id)).to_be_visible()
        expect(tree.locator(".deleted")).to_contain_text(answered.id)  # not a link: it is gone
        expect(tree.get_by_role("link", name=answered.id)).to_have_count(0)

        tree.get_by_role("link", name=forked.id).click()
        expect(page).to_have_url(re.compile(f"/dashboard/responses/{forked.id}$"))
        tree = page.locator("ul.tree")
        expect(tree.locator("a.current")).to_have_text(forked.id)
        expect(tree.get_by_role("link", name=last.id)).to_be_visible()  # the other branch
        expect(tree.get_by_text("Never mind: and in Rome?")).to_be_visible()
        shot(page, "response-thread")

        # The first turn as a chat: the question, the reasoning (collapsed), the tool call.
        page = admin.goto(f"/dashboard/responses/{first.id}")
        expect(page.locator(".role-user").first).to_contain_text("What is the weather in Paris?")
        expect(page.locator(".tool-call")).to_contain_text("get_weather")
        expect(page.locator(".tool-call")).to_contain_text('{"city": "Paris"}')
        reasoning = page.locator("details.reasoning")
        expect(reasoning).to_have_count(1)
        expect(reasoning).not_to_have_attribute("open", "")
        expect(reasoning.locator(".text")).to_be_hidden()
        reasoning.locator("summary").click()
        expect(reasoning.locator(".text")).to_contain_text("ask the tool")
        page.locator("details.raw summary").click()
        expect(page.locator("details.raw pre")).to_contain_text(f'"id": "{first.id}"')
        shot(page, "response-tools")
        page = admin.goto(f"/dashboard/responses/{forked.id}")
        expect(page.locator(".chat").first).to_contain_text("Never mind")


class TestJobs:
    def test_cancel_a_queued_job(
        self, admin: Tab, as_alpha: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        blocker_model = f"{model}-slow"
        fake_upstream.script(blocker_model, delay=30.0)
        blocker = as_alpha.responses.create(model=blocker_model, input="slow", background=True)
        try:
            poll_status(as_alpha, blocker.id, until=("in_progress",))
            # The server runs one job at a time: this one waits behind the blocker.
            waiting = as_alpha.responses.create(model=model, input="wait", background=True)
            assert as_alpha.responses.retrieve(waiting.id).status == "queued"

            page = admin.goto("/dashboard/jobs")
            row = page.locator(f"#job-{waiting.id}")
            expect(row.locator(".status")).to_have_text("queued")
            expect(page.locator(f"#job-{blocker.id} .status")).to_have_text("in_progress")
            expect(page.get_by_text("Oldest queued")).to_contain_text(waiting.id)
            shot(page, "jobs")

            page.get_by_role("button", name=f"Cancel {waiting.id}").click()
            expect(page.locator(".notice")).to_contain_text(f"Cancelled {waiting.id}")
            expect(page.locator(".notice")).to_contain_text("cancelled")
            expect(page.locator(f"#job-{waiting.id}")).to_have_count(0)
            assert as_alpha.responses.retrieve(waiting.id).status == "cancelled"

            page = admin.goto(f"/dashboard/responses/{waiting.id}")
            expect(page.get_by_role("heading", level=1).locator(".status")).to_have_text(
                "cancelled"
            )
            expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
        finally:
            as_alpha.responses.cancel(blocker.id)
        poll_status(as_alpha, blocker.id, until=("cancelled",))

    def test_requeue_a_failed_job(
        self, admin: Tab, as_alpha: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=400, error_message="the model refused this")
        job = as_alpha.responses.create(model=model, input="try", background=True)
        assert poll_status(as_alpha, job.id).status == "failed"

        page = admin.goto("/dashboard/jobs")
        expect(page.locator(f"#job-{job.id}")).to_contain_text("the model refused this")
        fake_upstream.script(model, reply="Second time lucky.")
        page.get_by_role("button", name=f"Requeue {job.id}").click()
        expect(page.locator(".notice")).to_contain_text(f"Queued {job.id} again")
        done = poll_status(as_alpha, job.id)
        assert (done.status, done.output_text) == ("completed", "Second time lucky.")


def test_live_stream_grows_and_resumes_after_a_reload(
    admin: Tab, as_alpha: openai.OpenAI, fake_upstream: FakeUpstream, model: str
) -> None:
    reply = " ".join(f"word{n}" for n in range(100))
    fake_upstream.script(model, reply=reply, chunk_delay=0.05)
    job = streamed_background(as_alpha, model=model, input="talk")
    streams: list[str] = []

    def seen(request: Request) -> None:
        if "stream=true" in request.url:
            streams.append(request.url)

    page = admin.page
    page.on("request", seen)
    admin.goto(f"/dashboard/responses/{job.id}/live")
    text = page.locator("#live .text").first
    expect(text).not_to_be_empty()
    first = len(text.inner_text())
    wait_until(lambda: len(text.inner_text()) > first, what="the live text to grow")
    assert streams[0].endswith("starting_after=-1")

    # (Playwright delivers its events only while one of its calls runs: wait with its own.)
    with page.expect_request(lambda request: "stream=true" in request.url) as reopened:
        page.reload()
    resumed_after = int(reopened.value.url.rsplit("starting_after=", 1)[1])
    assert resumed_after >= 0, reopened.value.url  # resumed, not replayed from the start
    expect(page.locator("#live[data-done=true]")).to_have_count(1, timeout=20_000)
    expect(page.locator("#live-status")).to_have_text("completed")
    # Nothing lost, nothing twice: the text drawn across the reload is the whole answer.
    assert page.locator("#live .text").first.inner_text() == reply
    shot(page, "live")

    page = admin.goto(f"/dashboard/responses/{job.id}")
    times = page.locator("section[aria-labelledby=times-h]")
    expect(times).not_to_contain_text("not yet")
    expect(times).to_contain_text("queued")


def test_project_b_never_shows_project_a(
    admin: Tab,
    as_alpha: openai.OpenAI,
    as_beta: openai.OpenAI,
    alpha: Project,
    beta: Project,
    fake_upstream: FakeUpstream,
    model: str,
) -> None:
    marker = f"secret-{uuid.uuid4().hex[:8]}"
    fake_upstream.script(model, reply=f"the {marker} answer")
    mine: dict[str, Any] = {"marker": marker}
    endpoint = as_alpha.webhooks.create(  # no receiver there: its deliveries are retried
        name=marker, url="http://127.0.0.1:9/hook", event_types=["response.completed"]
    )
    response = as_alpha.responses.create(model=model, input=marker, metadata={"marker": marker})
    job = as_alpha.responses.create(model=model, input=marker, background=True)
    conversation = as_alpha.conversations.create(
        items=[{"type": "message", "role": "user", "content": marker}], metadata=mine
    )
    chat = as_alpha.chat.completions.create(
        model=model, messages=[{"role": "user", "content": marker}], store=True, metadata=mine
    )
    poll_status(as_alpha, job.id)
    theirs = as_beta.responses.create(model=f"{model}-beta", input="beta's own")
    secrets = [marker, response.id, job.id, conversation.id, chat.id, endpoint.id]
    pages = [
        "/dashboard",
        "/dashboard/responses",
        "/dashboard/conversations",
        "/dashboard/chat",
        "/dashboard/jobs",
        "/dashboard/webhooks",
    ]

    # Alpha's pages show them (so that their absence below means something).
    for path in pages:
        admin.goto(path)
    page = admin.goto("/dashboard/responses")
    expect(page.get_by_role("link", name=response.id)).to_be_visible()
    page = admin.goto("/dashboard/webhooks")
    expect(page.get_by_role("heading", name=marker)).to_be_visible()
    # The job's end owed the endpoint an event: its delivery is listed, with how it went.
    expect(page.locator("table", has_text="Recent deliveries")).to_contain_text(
        "response.completed"
    )
    shot(page, "webhooks")
    for path, name in (
        ("/dashboard/conversations", "conversations"),
        (f"/dashboard/conversations/{conversation.id}", "conversation"),
        ("/dashboard/chat", "chat"),
        (f"/dashboard/chat/{chat.id}", "chat-completion"),
    ):
        page = admin.goto(path)
        expect(page.locator("main")).to_contain_text(conversation.id if "conv" in path else chat.id)
        shot(page, name)

    page = admin.goto("/dashboard")
    page.get_by_label("Project").select_option(beta.id)
    expect(page.get_by_role("heading", level=1)).to_contain_text(beta.name)
    shot(page, "overview-beta")
    expect(page.get_by_role("link", name=theirs.id)).to_be_visible()
    for path in pages:
        html = admin.goto(path).content()
        assert not [s for s in secrets if s in html], path
    for path in (
        f"/dashboard/responses/{response.id}",
        f"/dashboard/responses/{job.id}/live",
        f"/dashboard/conversations/{conversation.id}",
        f"/dashboard/chat/{chat.id}",
    ):
        page = admin.goto(path)
        expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
        assert not [s for s in secrets[:1] if s in page.locator("main").inner_text()]
    for kind in ("responses", "chat"):
        exported = page.request.get(f"{admin.base_url}/dashboard/export?kind={kind}")
        assert exported.ok
        assert not [s for s in secrets if s in exported.text()], kind
    # The stream the live page reads, with beta's session: alpha's response is not found.
    assert page.request.get(f"{admin.base_url}/v1/responses/{job.id}?stream=true").status == 404
    assert page.request.get(f"{admin.base_url}/v1/responses/{theirs.id}").ok


def test_readable_on_a_phone_in_dark_mode(
    browser: Browser, dash_server: ServerThread, logged_in: dict[str, object]
) -> None:
    context = browser.new_context(
        storage_state=logged_in,  # type: ignore[arg-type]
        viewport={"width": 390, "height": 844},
        color_scheme="dark",
        is_mobile=True,
    )
    try:
        page = context.new_page()
        for path in ("/dashboard/responses", "/dashboard/jobs"):
            page.goto(dash_server.url + path)
            # Nothing wider than the screen: wide tables scroll inside their own box.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 100, background  # the dark scheme, as the system asks
        shot(page, "jobs-phone-dark")
    finally:
        context.close()
