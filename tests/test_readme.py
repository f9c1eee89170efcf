"""The README says what is true: its ```python and ```sh blocks run as written, in order, against
a live Tether (the echo model, a fresh SQLite file; `http://127.0.0.1:8000` is rewritten to the
test server's), its configuration table is exactly the settings `app/config.py` reads, and it
points at nothing outside the repository. A block that cannot run here (Docker, a server that
runs until stopped) is marked `<!-- not run: reason -->` right before it."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from app import migrate
from app.config import Settings
from tests.harness import ServerThread, running_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCUMENTED_URL = "http://127.0.0.1:8000"
# Read from the environment by a library, not by Settings.
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}


class Block(NamedTuple):
    language: str
    code: str
    line: int
    skipped: str | None  # the reason, when marked not run


def blocks() -> list[Block]:
    found = []
    pattern = re.compile(
        r"(?:<!-- not run: (?P<reason>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S
    )
    for match in pattern.finditer(README):
        line = README.count("\n", 0, match.start("lang")) + 1
        found.append(Block(match["lang"], match["code"], line, match["reason"]))
    return found


def test_the_readme_has_examples_to_run() -> None:
    runnable = [b for b in blocks() if b.language in ("python", "sh") and b.skipped is None]
    assert {b.language for b in runnable} == {"python", "sh"}
    assert all(b.language in ("python", "sh", "") for b in blocks())


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('readme')}/readme.db"
    migrate.upgrade(url)
    with running_server(Settings(database_url=url, upstream_base_url=None)) as srv:
        yield srv


def test_every_code_block_runs_as_written(readme_server: ServerThread) -> None:
    settings: Settings = readme_server.app.state.settings
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "UPSTREAM_", "AUTH"))
    }
    env["DATABASE_URL"] = settings.database_url
    namespace: dict[str, Any] = {}
    for block in blocks():
        if block.skipped is not None or block.language not in ("python", "sh"):
            continue
        code = block.code.replace(DOCUMENTED_URL, readme_server.url)
        where = f"README.md:{block.line}"
        if block.language == "python":
            exec(compile(code, where, "exec"), namespace)
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=ROOT,
            env={**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"},
            capture_output=True,
            text=True,
            # A block runs `tether` several times, a second or more of imports each, and the
            # suite's other processes share the cores (make test's -n).
            timeout=180,
        )
        assert result.returncode == 0, f"{where}\n{result.stdout}\n{result.stderr}"
        assert not re.search(r'"error":\s*\{', result.stdout), f"{where}\n{result.stdout}"


def configuration_table() -> set[str]:
    section = README.split("## Configuration", 1)[1].split("\n#", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    return names


def test_the_configuration_table_is_the_settings() -> None:
    assert configuration_table() - NOT_SETTINGS == {name.upper() for name in Settings.model_fields}


def test_nothing_points_outside_the_repository() -> None:
    assert "../" not in README
    links = re.findall(r"\]\(([^)]+)\)", README)
    for target in links:
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), target
        assert path.exists(), target
    tops = {p.name for p in ROOT.iterdir()}
    for quoted in set(re.findall(r"`([\w./-]+/[\w./-]*)`", README)):
        first = quoted.split("/")[0]
        if first in tops:  # a path into the repository: it must exist
            assert (ROOT / quoted).exists(), quoted
