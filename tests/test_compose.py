"""docker-compose.yml, read as compose reads it (no Docker needed): every setting passed through
with Tether's own default, a one-shot migration the API and worker wait for, named volumes,
healthchecks, exec-form commands, nothing published beyond 127.0.0.1 and no host port taken by
default (the test services publish theirs through docker-compose.test.yml)."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
# Fixed by the stack itself: its own services, and the container's port (see the file's header).
FIXED = {"DATABASE_URL", "REDIS_URL", "HOST", "PORT"}
DEFAULTED = re.compile(r"^\$\{([A-Z0-9_]+):-(.*)\}$")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load("docker-compose.yml")


def duration(text: str) -> float:
    units = {"s": 1, "m": 60}
    return float(text[:-1]) * units[text[-1]]


def test_every_setting_is_passed_through_with_its_default(compose: dict[str, Any]) -> None:
    env: dict[str, str] = compose["x-tether-env"]
    assert set(env) | FIXED == {name.upper() for name in Settings.model_fields}
    for var, value in env.items():
        if var in FIXED:
            continue
        match = DEFAULTED.match(str(value))
        assert match, f"{var}: {value!r} is not ${{{var}:-default}}"
        assert match.group(1) == var
        default = Settings.model_fields[var.lower()].default
        given = Settings.model_validate({var.lower(): match.group(2)}).model_dump()[var.lower()]
        assert given == default, var


def test_the_api_and_the_worker_wait_for_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["tether", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        waits = services[name]["depends_on"]
        assert waits["migrate"] == {"condition": "service_completed_successfully"}
        assert waits["redis"] == {"condition": "service_healthy"}
        assert services[name]["environment"] == compose["x-tether-env"]


def test_commands_are_exec_form(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        command = service.get("command", [])
        assert isinstance(command, list), f"{name}: a shell would be PID 1 and eat SIGTERM"
        assert command[:1] not in (["sh"], ["bash"]), name
    assert compose["services"]["api"]["command"][:2] == ["tether", "serve"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["tether", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    assert "\nUSER tether\n" in dockerfile


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "api", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    ping = services["worker"]["healthcheck"]["test"]
    assert ping == ["CMD-SHELL", "celery -A workers.celery_app inspect ping -d celery@$$HOSTNAME"]


def test_the_worker_is_given_time_to_drain(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    drain = Settings.model_fields["worker_drain_seconds"].default
    assert duration(worker["stop_grace_period"]) >= drain + 20


def test_only_the_api_is_published_and_only_on_loopback(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {"api": ["127.0.0.1:${TETHER_PORT:-8000}:8000"]}


def test_the_test_services_are_published_where_the_suite_looks(compose: dict[str, Any]) -> None:
    override = load("docker-compose.test.yml")["services"]
    assert override == {
        "postgres": {"ports": ["127.0.0.1:5432:5432"]},
        "redis": {"ports": ["127.0.0.1:6379:6379"]},
    }
    ensure = (ROOT / "scripts" / "ensure-services").read_text()
    assert '-f "$root/docker-compose.yml" -f "$root/docker-compose.test.yml"' in ensure
