import httpx

from tests.conftest import StartServer
from tests.harness import ServerThread, free_port


def test_healthy_when_the_database_answers(server: ServerThread) -> None:
    answer = httpx.get(f"{server.url}/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_503_when_the_database_does_not(start_server: StartServer) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    with start_server(database_url=nowhere) as srv:
        answer = httpx.get(f"{srv.url}/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
