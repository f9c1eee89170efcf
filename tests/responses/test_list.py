"""GET /v1/responses: stored responses filtered by model, status and metadata, paged."""

import uuid
from typing import Any

import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status


def listed(client: openai.OpenAI, **params: Any) -> dict[str, Any]:
    page = client.get("/responses", options={"params": params}, cast_to=object)
    assert isinstance(page, dict)
    return page


class TestListResponses:
    def test_filters(self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str) -> None:
        run = uuid.uuid4().hex[:10]
        ok = [
            client.responses.create(
                model=model, input="x", metadata={"run": run, "job": "nightly"}
            ).id
            for _ in range(2)
        ]
        fake_upstream.script(f"{model}-bad", status=400)
        with pytest.raises(openai.BadRequestError):
            client.responses.create(
                model=f"{model}-bad", input="x", metadata={"run": run, "job": "nightly"}
            )
        bg = client.responses.create(
            model=model, input="x", background=True, metadata={"run": run, "job": "hourly"}
        )
        poll_status(client, bg.id)

        def ids(**params: Any) -> list[str]:
            return [r["id"] for r in listed(client, limit=100, **params)["data"]]

        everything = ids(**{"metadata[run]": run})
        assert len(everything) == 4
        assert everything == sorted(everything, reverse=True)  # newest first by default
        assert (
            ids(**{"metadata[run]": run, "metadata[job]": "nightly", "status": "completed"})
            == ok[::-1]
        )
        failed = ids(**{"metadata[run]": run, "status": "failed"})
        assert len(failed) == 1
        assert ids(**{"metadata[run]": run, "metadata[job]": "hourly"}) == [bg.id]
        assert ids(**{"metadata[run]": run, "model": f"{model}-bad"}) == failed
        page = listed(client, **{"metadata[run]": run, "limit": 1})
        assert page["object"] == "list"
        assert page["has_more"] is True
        assert page["first_id"] == page["last_id"] == everything[0]

    @pytest.mark.parametrize("order", ["asc", "desc"])
    def test_pages_cover_every_row_once(
        self, client: openai.OpenAI, model: str, order: str
    ) -> None:
        run = uuid.uuid4().hex[:10]
        made = [
            client.responses.create(model=model, input=str(i), metadata={"run": run}).id
            for i in range(5)
        ]
        seen: list[str] = []
        after = None
        while True:
            page = listed(
                client,
                **{"metadata[run]": run, "limit": 2, "order": order},
                **({"after": after} if after else {}),
            )
            seen += [r["id"] for r in page["data"]]
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert seen == (made if order == "asc" else made[::-1])

    def test_deleted_responses_are_not_listed(self, client: openai.OpenAI, model: str) -> None:
        run = uuid.uuid4().hex[:10]
        made = client.responses.create(model=model, input="x", metadata={"run": run})
        client.responses.delete(made.id)
        assert listed(client, **{"metadata[run]": run})["data"] == []

    def test_bad_filters(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError):
            listed(client, status="sleeping")
        with pytest.raises(openai.BadRequestError):
            listed(client, limit=0)
        with pytest.raises(openai.BadRequestError) as err:
            listed(client, **{f"metadata[k{i}]": "v" for i in range(17)})
        assert err.value.body["param"] == "metadata"  # type: ignore[index]
