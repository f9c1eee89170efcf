"""Two projects on one server: nothing of B's is visible, changeable or usable with A's key, and
"theirs" is indistinguishable from "never existed" (the same status and the same bytes, ids
aside). Both backends.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.auth.harness import (
    http,
    make_key,
    own_settings,
    poll,
    project_name,
    replace_ids,
    twin,
)
from tests.fakes.upstream import FakeUpstream
from tests.harness import migrated_database, running_server

# B's objects by name; a path or body names them as {name}. `a_conv` is A's own conversation.
B_OBJECTS = ("resp", "bg", "out_item", "conv", "item", "cc")


@dataclass
class World:
    base_url: str
    a_key: str
    b_key: str
    b: dict[str, str]  # B's ids by name, and A's conversation as `a_conv`
    never: dict[str, str]  # for each of B's ids, an id of the same shape never stored
    b_model: str
    tag: str  # the metadata value on every object of B's
    snapshot: dict[str, str]  # B's view of its objects, byte for byte

    def placeholders(self, ids: dict[str, str]) -> dict[str, str]:
        return {ids[name]: f"<{name}>" for name in B_OBJECTS}

    def b_view(self) -> dict[str, str]:
        """What B sees of its objects: every GET on them, as text."""
        b = self.b
        paths = {
            "resp": f"/v1/responses/{b['resp']}",
            "resp input items": f"/v1/responses/{b['resp']}/input_items",
            "bg": f"/v1/responses/{b['bg']}",
            "conv": f"/v1/conversations/{b['conv']}",
            "conv items": f"/v1/conversations/{b['conv']}/items",
            "item": f"/v1/conversations/{b['conv']}/items/{b['item']}",
            "cc": f"/v1/chat/completions/{b['cc']}",
            "cc messages": f"/v1/chat/completions/{b['cc']}/messages",
        }
        with http(self.base_url, self.b_key) as api:
            answers = {name: api.get(path) for name, path in paths.items()}
        for name, answer in answers.items():
            assert answer.status_code == 200, (name, answer.text)
        return {name: answer.text for name, answer in answers.items()}

    def assert_b_intact(self) -> None:
        assert self.b_view() == self.snapshot


@pytest.fixture(scope="module")
def world(
    backend: str, fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    b_model, slow_model = f"m-{uuid.uuid4().hex[:12]}", f"m-{uuid.uuid4().hex[:12]}"
    fake_upstream.script(slow_model, delay=120.0)  # B's background response stays in flight
    tag = uuid.uuid4().hex
    with migrated_database(backend, str(tmp_path_factory.mktemp("tenancy"))) as url:
        settings = own_settings(url, fake_upstream)
        _, a_key = make_key(settings, project_name())
        _, b_key = make_key(settings, project_name())
        with running_server(settings) as srv, http(srv.url, b_key) as b:
            meta = {"tenant": tag}

            def made(answer: httpx.Response) -> dict[str, Any]:
                assert answer.status_code == 200, answer.text
                body: dict[str, Any] = answer.json()
                return body

            resp = made(
                b.post("/v1/responses", json={"model": b_model, "input": "B", "metadata": meta})
            )
            bg = made(
                b.post(
                    "/v1/responses",
                    json={"model": slow_model, "input": "B", "background": True, "metadata": meta},
                )
            )
            poll(
                lambda: b.get(f"/v1/responses/{bg['id']}").json()["status"],
                lambda status: status == "in_progress",
                timeout=10,
                what="B's background response to start",
            )
            conv = made(
                b.post(
                    "/v1/conversations",
                    json={"items": [{"role": "user", "content": "B's item"}], "metadata": meta},
                )
            )
            item = made(b.get(f"/v1/conversations/{conv['id']}/items")).get("data", [])[0]
            cc = made(
                b.post(
                    "/v1/chat/completions",
                    json={
                        "model": b_model,
                        "messages": [{"role": "user", "content": "B"}],
                        "store": True,
                        "metadata": meta,
                    },
                )
            )
            with http(srv.url, a_key) as a:
                a_conv = made(
                    a.post("/v1/conversations", json={"items": [{"role": "user", "content": "A"}]})
                )
            ids = {
                "resp": resp["id"],
                "bg": bg["id"],
                "out_item": resp["output"][0]["id"],
                "conv": conv["id"],
                "item": item["id"],
                "cc": cc["id"],
            }
            world = World(
                base_url=srv.url,
                a_key=a_key,
                b_key=b_key,
                b={**ids, "a_conv": a_conv["id"]},
                never={**{k: twin(v) for k, v in ids.items()}, "a_conv": a_conv["id"]},
                b_model=b_model,
                tag=tag,
                snapshot={},
            )
            world.snapshot = world.b_view()
            yield world
            b.post(f"/v1/responses/{bg['id']}/cancel")


def fill(value: Any, ids: dict[str, str]) -> Any:
    """A path or JSON body with each {name} replaced by that id."""
    if isinstance(value, str):
        for name, found in ids.items():
            value = value.replace(f"{{{name}}}", found)
        return value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


ADD_ITEMS = {"items": [{"role": "user", "content": "from A"}]}
METADATA = {"metadata": {"tenant": "A"}}
# Every path that names an object, the body its POST takes, and the verbs it serves.
PATHS: list[tuple[str, dict[str, Any] | None, set[str]]] = [
    ("/v1/responses/{resp}", None, {"GET", "DELETE"}),
    ("/v1/responses/{resp}?stream=true", None, {"GET", "DELETE"}),
    ("/v1/responses/{resp}?stream=true&starting_after=0", None, {"GET", "DELETE"}),
    ("/v1/responses/{resp}/cancel", None, {"POST"}),
    ("/v1/responses/{resp}/input_items", None, {"GET"}),
    ("/v1/responses/{bg}", None, {"GET", "DELETE"}),
    ("/v1/responses/{bg}?stream=true", None, {"GET", "DELETE"}),
    ("/v1/responses/{bg}/cancel", None, {"POST"}),
    ("/v1/responses/{bg}/input_items", None, {"GET"}),
    ("/v1/conversations/{conv}", METADATA, {"GET", "POST", "DELETE"}),
    ("/v1/conversations/{conv}/items", ADD_ITEMS, {"GET", "POST"}),
    ("/v1/conversations/{conv}/items/{item}", None, {"GET", "DELETE"}),
    ("/v1/conversations/{a_conv}/items/{item}", None, {"GET", "DELETE"}),
    ("/v1/chat/completions/{cc}", METADATA, {"GET", "POST", "DELETE"}),
    ("/v1/chat/completions/{cc}/messages", None, {"GET"}),
]
VERBS = ("GET", "POST", "DELETE", "PUT", "PATCH")
MATRIX = [
    pytest.param(verb, path, body, 404 if verb in served else 405, id=f"{verb} {path}")
    for path, body, served in PATHS
    for verb in VERBS
]


@pytest.mark.parametrize(("verb", "path", "body", "status"), MATRIX)
def test_theirs_is_answered_as_never_existed(
    world: World, verb: str, path: str, body: dict[str, Any] | None, status: int
) -> None:
    with http(world.base_url, world.a_key) as a:
        theirs = a.request(verb, fill(path, world.b), json=fill(body, world.b))
        never = a.request(verb, fill(path, world.never), json=fill(body, world.never))
    assert (theirs.status_code, never.status_code) == (status, status), (theirs.text, never.text)
    assert theirs.headers["content-type"] == never.headers["content-type"]
    assert replace_ids(theirs.text, world.placeholders(world.b)) == replace_ids(
        never.text, world.placeholders(world.never)
    )
    world.assert_b_intact()


# Creates with A's key that name one of B's objects; each must fail exactly as for an unknown id.
REFERENCES: list[tuple[str, str, dict[str, Any]]] = [
    ("previous_response_id", "/v1/responses", {"previous_response_id": "{resp}"}),
    ("previous_response_id, background", "/v1/responses", {"previous_response_id": "{bg}"}),
    (
        "previous_response_id, streamed",
        "/v1/responses",
        {"previous_response_id": "{resp}", "stream": True},
    ),
    (
        "previous_response_id, background create",
        "/v1/responses",
        {"previous_response_id": "{resp}", "background": True},
    ),
    (
        "item_reference to an output item",
        "/v1/responses",
        {"input": [{"type": "item_reference", "id": "{out_item}"}]},
    ),
    (
        "item_reference to a conversation item",
        "/v1/responses",
        {"input": [{"type": "item_reference", "id": "{item}"}]},
    ),
    ("conversation by id", "/v1/responses", {"conversation": "{conv}"}),
    ("conversation as an object", "/v1/responses", {"conversation": {"id": "{conv}"}}),
    (
        "input_tokens with previous_response_id",
        "/v1/responses/input_tokens",
        {"previous_response_id": "{resp}"},
    ),
    ("input_tokens with conversation", "/v1/responses/input_tokens", {"conversation": "{conv}"}),
    (
        "new conversation with an item_reference",
        "/v1/conversations",
        {"items": [{"type": "item_reference", "id": "{out_item}"}]},
    ),
    (
        "item_reference added to A's conversation",
        "/v1/conversations/{a_conv}/items",
        {"items": [{"type": "item_reference", "id": "{item}"}]},
    ),
]


@pytest.mark.parametrize(
    ("path", "fields"), [pytest.param(p, f, id=name) for name, p, f in REFERENCES]
)
def test_theirs_cannot_be_referenced(
    world: World, fake_upstream: FakeUpstream, model: str, path: str, fields: dict[str, Any]
) -> None:
    body = {"model": model, "input": "from A", **fields} if path.startswith("/v1/resp") else fields
    with http(world.base_url, world.a_key) as a:
        theirs = a.post(fill(path, world.b), json=fill(body, world.b))
        never = a.post(fill(path, world.never), json=fill(body, world.never))
    assert theirs.status_code in (400, 404), theirs.text
    assert theirs.status_code == never.status_code, (theirs.text, never.text)
    assert replace_ids(theirs.text, world.placeholders(world.b)) == replace_ids(
        never.text, world.placeholders(world.never)
    )
    assert fake_upstream.requests(model) == []
    world.assert_b_intact()


def listed(api: httpx.Client, path: str, **params: str) -> list[str]:
    answer = api.get(path, params={"limit": "100", **params})
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()["data"]]


def test_lists_show_only_the_callers_objects(world: World) -> None:
    meta = {"tenant": world.tag}  # the same metadata and model as B's objects
    with http(world.base_url, world.a_key) as a:
        resp = a.post(
            "/v1/responses", json={"model": world.b_model, "input": "A", "metadata": meta}
        )
        cc = a.post(
            "/v1/chat/completions",
            json={
                "model": world.b_model,
                "messages": [{"role": "user", "content": "A"}],
                "store": True,
                "metadata": meta,
            },
        )
        mine = {"resp": resp.json()["id"], "cc": cc.json()["id"]}
        by_tag = {"metadata[tenant]": world.tag}
        assert listed(a, "/v1/responses", **by_tag) == [mine["resp"]]
        assert listed(a, "/v1/responses", model=world.b_model) == [mine["resp"]]
        assert listed(a, "/v1/responses", status="in_progress") == []
        assert listed(a, "/v1/chat/completions", **by_tag) == [mine["cc"]]
        assert listed(a, "/v1/chat/completions", model=world.b_model) == [mine["cc"]]
        everything = set(listed(a, "/v1/responses")) | set(listed(a, "/v1/chat/completions"))
        assert everything == set(mine.values())
    with http(world.base_url, world.b_key) as b:
        assert set(listed(b, "/v1/responses", **by_tag)) == {world.b["resp"], world.b["bg"]}
        assert listed(b, "/v1/chat/completions", **by_tag) == [world.b["cc"]]
    world.assert_b_intact()
