from app.jobs import RUN_NEXT_TASK, RUN_RESPONSE_TASK
from workers.celery_app import app
from workers.runtime import get_runtime


@app.task(name=RUN_RESPONSE_TASK)
def run_response(response_id: str) -> None:
    """Run a background response to its terminal status (a no-op if it is not queued)."""
    get_runtime().run(response_id)


@app.task(name=RUN_NEXT_TASK)
def run_next(response_id: str) -> None:
    """A ticket: run the fairest queued response (app/kit/fair.py), or this one."""
    get_runtime().run(response_id, fair=True)
