"""GET /v1/responses/{id}/input_items: OpenAI's cursor pages, in both orders."""

import openai
import pytest

N = 7


@pytest.fixture
def response_id(client: openai.OpenAI, model: str) -> str:
    items = [{"role": "user", "content": f"item {i}"} for i in range(N)]
    return client.responses.create(model=model, input=items).id  # type: ignore[arg-type]


def _texts(page: list[object]) -> list[str]:
    return [item.content[0].text for item in page]  # type: ignore[attr-defined]


class TestInputItems:
    def test_default_is_newest_first_with_limit_20(
        self, client: openai.OpenAI, response_id: str
    ) -> None:
        page = client.responses.input_items.list(response_id)
        assert _texts(page.data) == [f"item {i}" for i in reversed(range(N))]
        assert page.has_more is False
        assert all(item.id.startswith("msg_") for item in page.data)
        assert page.data[0].type == "message"
        assert page.data[0].role == "user"  # type: ignore[union-attr]
        assert page.data[0].status == "completed"  # type: ignore[union-attr]

    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize("limit", [1, 2, 3, N, N + 1])
    def test_walking_pages_sees_every_item_once(
        self, client: openai.OpenAI, response_id: str, order: str, limit: int
    ) -> None:
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            page = client.responses.input_items.list(
                response_id, limit=limit, order=order, **({"after": after} if after else {})
            )
            pages += 1
            seen += _texts(page.data)
            if not page.has_more:
                break
            after = page.data[-1].id
        expected = [f"item {i}" for i in range(N)]
        assert seen == (expected if order == "asc" else expected[::-1])
        assert pages == -(-N // limit)

    def test_page_fields(self, client: openai.OpenAI, response_id: str) -> None:
        raw = client.get(
            f"/responses/{response_id}/input_items",
            options={"params": {"limit": 2, "order": "asc"}},
            cast_to=object,
        )
        assert isinstance(raw, dict)
        assert raw["object"] == "list"
        assert raw["first_id"] == raw["data"][0]["id"]
        assert raw["last_id"] == raw["data"][1]["id"]
        assert raw["has_more"] is True

    def test_sdk_auto_pagination(self, client: openai.OpenAI, response_id: str) -> None:
        items = list(client.responses.input_items.list(response_id, limit=2, order="asc"))
        assert _texts(items) == [f"item {i}" for i in range(N)]

    def test_after_the_last_item_is_an_empty_page(
        self, client: openai.OpenAI, response_id: str
    ) -> None:
        oldest = client.responses.input_items.list(response_id, limit=1, order="asc").data[0].id
        page = client.responses.input_items.list(response_id, after=oldest, order="desc")
        assert page.data == []
        assert page.has_more is False

    @pytest.mark.parametrize(
        ("params", "param"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 101}, "limit"),
            ({"order": "up"}, "order"),
            ({"limit": "many"}, "limit"),
        ],
    )
    def test_bad_query(
        self, client: openai.OpenAI, response_id: str, params: dict[str, object], param: str
    ) -> None:
        with pytest.raises(openai.BadRequestError) as err:
            client.get(
                f"/responses/{response_id}/input_items", options={"params": params}, cast_to=object
            )
        assert err.value.body["param"] == param  # type: ignore[index]

    def test_only_this_responses_input(
        self, client: openai.OpenAI, response_id: str, model: str
    ) -> None:
        child = client.responses.create(
            model=model, input="child", previous_response_id=response_id
        )
        assert _texts(client.responses.input_items.list(child.id).data) == ["child"]

    def test_client_item_ids_are_kept(self, client: openai.OpenAI, model: str) -> None:
        created = client.responses.create(
            model=model,
            input=[{"id": "msg_mine", "type": "message", "role": "user", "content": "x"}],
        )
        assert [i.id for i in client.responses.input_items.list(created.id)] == ["msg_mine"]

    def test_unknown_response(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list("resp_nope")
