from app.jobs import RUN_NEXT_TASK, RUN_RESPONSE_TASK, RUN_RESPONSES_TASK
from workers.celery_app import app
from workers.runtime import get_runtime


@app.task(name=RUN_NEXT_TASK)
def run_next(tickets: list[str]) -> None:
    """Tickets of new jobs: each runs the fairest queued response (app/kit/fair.py), or its own."""
    get_runtime().run(tickets, fair=True)


@app.task(name=RUN_RESPONSES_TASK)
def run_responses(response_ids: list[str]) -> None:
    """Run background responses (rescues) to their terminal statuses (each a no-op if it is
    not queued)."""
    get_runtime().run(response_ids)


@app.task(name=RUN_RESPONSE_TASK)
def run_response(response_id: str) -> None:
    """One response: the message an API of an earlier version sends."""
    get_runtime().run([response_id])
