"""Background responses: run by Celery workers, or in-process in embedded mode (DESIGN §6)."""
