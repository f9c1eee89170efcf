"""Creating, retrieving and deleting responses, and what the model server receives."""

import httpx
import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread


class TestCreate:
    def test_completed_response_is_stored_and_retrievable(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="Hello back!")
        created = client.responses.create(model=model, input="Hello", metadata={"job": "a"})

        assert created.id.startswith("resp_")
        assert created.object == "response"
        assert created.status == "completed"
        assert created.output_text == "Hello back!"
        assert created.output[0].type == "message"
        assert created.output[0].id.startswith("msg_")
        assert created.store is True
        assert created.background is False
        assert created.metadata == {"job": "a"}
        assert created.completed_at is not None
        assert created.completed_at >= created.created_at
        assert client.responses.retrieve(created.id).model_dump() == created.model_dump()

    def test_usage_is_mapped_with_details(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model,
            usage={
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        )
        usage = client.responses.create(model=model, input="count me").usage
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 7, 18)
        assert usage.input_tokens_details.cached_tokens == 3
        assert usage.output_tokens_details.reasoning_tokens == 2

    def test_parameters_are_forwarded_to_the_model(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        created = client.responses.create(
            model=model,
            input="hi",
            instructions="Be brief.",
            temperature=0.3,
            top_p=0.9,
            max_output_tokens=64,
            user="user-1",
            top_logprobs=2,
            text={
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "strict": True,
                    "schema": {"type": "object", "properties": {}},
                }
            },
            reasoning={"effort": "low"},
        )
        (sent,) = fake_upstream.requests(model)
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ]
        assert sent["temperature"] == 0.3
        assert sent["top_p"] == 0.9
        assert sent["max_tokens"] == 64
        assert sent["user"] == "user-1"
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "strict": True,
                "schema": {"type": "object", "properties": {}},
            },
        }
        assert sent["reasoning_effort"] == "low"
        assert fake_upstream.request_headers(model)[0]["authorization"] == "Bearer sk-upstream-test"
        # ...and echoed on the object, as OpenAI does.
        assert (created.temperature, created.top_p, created.max_output_tokens) == (0.3, 0.9, 64)
        assert created.instructions == "Be brief."
        assert created.reasoning is not None
        assert created.reasoning.effort == "low"

    def test_every_role_and_content_part_reaches_the_model(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        client.responses.create(
            model=model,
            input=[
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this?"},
                        {
                            "type": "input_image",
                            "image_url": "https://example.test/cat.png",
                            "detail": "low",
                        },
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "a cat"}]},
                {"role": "user", "content": "sure?"},
            ],
        )
        (sent,) = fake_upstream.requests(model)
        assert sent["messages"] == [
            {"role": "system", "content": "sys"},
            # Self-hosted chat templates rarely know `developer`.
            {"role": "system", "content": "dev"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.test/cat.png", "detail": "low"},
                    },
                ],
            },
            {"role": "assistant", "content": "a cat"},
            {"role": "user", "content": "sure?"},
        ]

    def test_length_finish_is_incomplete(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="cut off", finish_reason="length")
        created = client.responses.create(model=model, input="long story", max_output_tokens=16)
        assert created.status == "incomplete"
        assert created.incomplete_details is not None
        assert created.incomplete_details.reason == "max_output_tokens"
        assert created.output_text == "cut off"
        assert client.responses.retrieve(created.id).status == "incomplete"

    def test_reasoning_content_becomes_a_reasoning_item(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="42", reasoning_content="think think")
        created = client.responses.create(model=model, input="q")
        assert [item.type for item in created.output] == ["reasoning", "message"]
        assert created.output_text == "42"

    def test_every_answer_carries_a_request_id(self, server: ServerThread, model: str) -> None:
        ok = httpx.post(f"{server.url}/v1/responses", json={"model": model, "input": "x"})
        bad = httpx.post(f"{server.url}/v1/responses", json={"input": "x"})
        missing = httpx.get(f"{server.url}/v1/responses/resp_nope")
        for answer in (ok, bad, missing):
            assert answer.headers["x-request-id"].startswith("req_")
        assert [ok.status_code, bad.status_code, missing.status_code] == [200, 400, 404]

    def test_ids_sort_by_creation(self, client: openai.OpenAI, model: str) -> None:
        ids = [client.responses.create(model=model, input=str(n)).id for n in range(5)]
        assert sorted(ids) == ids


class TestStoreFalse:
    def test_unstored_response_is_never_retrievable(
        self, client: openai.OpenAI, model: str
    ) -> None:
        created = client.responses.create(model=model, input="secret", store=False)
        assert created.status == "completed"
        assert created.store is False
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list(created.id)

    def test_unstored_response_cannot_be_continued(self, client: openai.OpenAI, model: str) -> None:
        created = client.responses.create(model=model, input="secret", store=False)
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model=model, input="next", previous_response_id=created.id)
        assert err.value.body["code"] == "previous_response_not_found"


class TestDelete:
    def test_delete_then_404(self, client: openai.OpenAI, model: str) -> None:
        created = client.responses.create(model=model, input="bye")
        client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError) as err:
            client.responses.retrieve(created.id)
        assert err.value.body == {
            "message": f"Response with id '{created.id}' not found.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        with pytest.raises(openai.NotFoundError):
            client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list(created.id)

    def test_delete_answers_with_the_deleted_object(self, server: ServerThread, model: str) -> None:
        created = httpx.post(f"{server.url}/v1/responses", json={"model": model, "input": "x"})
        rid = created.json()["id"]
        answer = httpx.delete(f"{server.url}/v1/responses/{rid}")
        assert answer.json() == {"id": rid, "object": "response.deleted", "deleted": True}

    def test_unknown_id(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError):
            client.responses.delete("resp_unknown")
