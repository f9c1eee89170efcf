"""TETHER_MODELS: the catalog is checked at start (one line naming the bad key), /v1/models
lists it, and each name (or alias) is sent to its deployment as that server names the model."""

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import ValidationError

from app.catalog.spec import CatalogError, load_catalog
from app.config import Settings, describe_invalid
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.routing.conftest import StartRouted, catalog_toml, deployment

TETHER = str(Path(sys.executable).with_name("tether"))


def error_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(CatalogError) as err:
        load_catalog(str(path))
    return str(err.value)


class TestValidation:
    def test_a_misspelt_key_is_named(self, tmp_path: Path) -> None:
        text = catalog_toml({"qwen": [{"base_url": "http://a:8000/v1", "wieght": 2}]})
        assert error_of(tmp_path, text) == (
            "models[0].deployments[0].wieght: Extra inputs are not permitted"
        )

    def test_a_bad_value_is_named_with_what_it_accepts(self, tmp_path: Path) -> None:
        text = catalog_toml(
            {"a": [{"base_url": "http://a/v1"}], "b": [{"base_url": "http://b/v1", "weight": 0}]}
        )
        assert error_of(tmp_path, text) == (
            "models[1].deployments[0].weight: Input should be greater than 0"
        )

    def test_names_and_aliases_are_unique(self, tmp_path: Path) -> None:
        text = catalog_toml(
            {"a": [{"base_url": "http://a/v1"}], "b": [{"base_url": "http://b/v1"}]},
            b=["a"],
        )
        assert error_of(tmp_path, text) == "models[1].aliases[0]: 'a' is already a model name"

    def test_two_deployments_need_names_of_their_own(self, tmp_path: Path) -> None:
        same = {"base_url": "http://gpu:8000/v1"}
        assert error_of(tmp_path, catalog_toml({"a": [same, same]})) == (
            "models[0].deployments[1].name: two deployments are called 'gpu:8000'; give each a "
            "name of its own"
        )

    def test_an_unset_key_variable_is_named(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("TETHER_TEST_UNSET_KEY", raising=False)
        text = catalog_toml(
            {"a": [{"base_url": "http://a/v1", "api_key_env": "TETHER_TEST_UNSET_KEY"}]}
        )
        assert error_of(tmp_path, text) == (
            "models[0].deployments[0].api_key_env: the environment variable "
            "TETHER_TEST_UNSET_KEY is unset"
        )

    def test_not_toml_and_not_there(self, tmp_path: Path) -> None:
        assert error_of(tmp_path, "[[models]\n").startswith(f"{tmp_path}/models.toml is not valid")
        with pytest.raises(CatalogError, match=r"cannot read /nonexistent\.toml"):
            load_catalog("/nonexistent.toml")

    def test_the_settings_refuse_it_in_one_line(self, tmp_path: Path) -> None:
        path = tmp_path / "models.toml"
        path.write_text("[[models]]\nname = 'x'\n")
        with pytest.raises(ValidationError) as err:
            Settings(tether_models=str(path))
        assert describe_invalid(err.value) == (
            f"invalid configuration: TETHER_MODELS='{path}': models[0].deployments: Field required"
        )

    def test_a_process_stops_at_start_with_one_line(self, tmp_path: Path) -> None:
        path = tmp_path / "models.toml"
        path.write_text(catalog_toml({"a": [{"base_url": "gpu:8000"}]}))
        env = {"PATH": "/usr/bin:/bin", "TETHER_MODELS": str(path)}
        result = subprocess.run(
            [TETHER, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"tether: invalid configuration: TETHER_MODELS='{path}': models[0].deployments[0]."
            "base_url: String should match pattern '^https?://[^/\\s]+'"
        ]


class TestModels:
    def test_the_catalog_is_listed_with_its_aliases(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        spec = [deployment(fake_upstream, model, context_window=4096)]
        with start_routed({name: spec}, aliases={name: [f"{name}-latest"]}) as server:
            client = sdk(server.url)
            listed = {m.id: m for m in client.models.list()}
            assert set(listed) == {name, f"{name}-latest", "echo"}
            assert listed[name].owned_by == "tether"
            assert client.models.retrieve(f"{name}-latest").id == f"{name}-latest"
            raw = httpx.get(f"{server.url}/v1/models/{name}").json()
            assert raw["max_model_len"] == 4096

    def test_the_catch_all_upstream_serves_every_other_name(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        fake_upstream.script(model, reply="from the catch-all")
        spec = [deployment(fake_upstream, f"{model}-up")]
        with start_routed({name: spec}, upstream_base_url=f"{fake_upstream.url}/v1") as server:
            client = sdk(server.url)
            assert client.responses.create(model=model, input="x").output_text == (
                "from the catch-all"
            )
            ids = {m.id for m in client.models.list()}
            assert {name, model, "fake-model"} <= ids
            assert "echo" not in ids  # the catch-all answers every name, echo included

    def test_an_unknown_model_without_catch_all_is_a_400(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        with start_routed({name: [deployment(fake_upstream, model)]}) as server:
            with pytest.raises(openai.BadRequestError) as err:
                sdk(server.url).responses.create(model="nope", input="x")
            assert err.value.body["code"] == "model_not_found"  # type: ignore[index]
            assert err.value.body["param"] == "model"  # type: ignore[index]


class TestWhatTheDeploymentReceives:
    def test_its_own_model_name_key_and_max_tokens_style(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        name: str,
        model: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("TETHER_TEST_GPU_KEY", "sk-gpu-a")
        spec = deployment(
            fake_upstream,
            model,
            api_key_env="TETHER_TEST_GPU_KEY",
            max_tokens_param="max_completion_tokens",
        )
        with start_routed({name: [spec]}, aliases={name: ["alias"]}) as server:
            client = sdk(server.url)
            response = client.responses.create(model="alias", input="hi", max_output_tokens=50)
            assert response.model == "alias"
            client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=7
            )
        sent = fake_upstream.requests(model)
        assert [body["model"] for body in sent] == [model, model]
        assert [body.get("max_completion_tokens") for body in sent] == [50, 7]
        assert [body.get("max_tokens") for body in sent] == [None, None]
        headers = fake_upstream.request_headers(model)
        assert {h["authorization"] for h in headers} == {"Bearer sk-gpu-a"}

    def test_a_declared_context_window_truncates(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        spec = deployment(fake_upstream, model, context_window=60)
        with start_routed({name: [spec]}) as server:
            client = sdk(server.url)
            first = client.responses.create(model=name, input="old " * 40)
            client.responses.create(
                model=name, input="new", previous_response_id=first.id, truncation="auto"
            )
        assert fake_upstream.requests(model)[-1]["messages"] == [{"role": "user", "content": "new"}]
