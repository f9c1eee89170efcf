# Tether's image: the api (default command: migrate, then serve) and, with another command, the
# Celery worker (`celery -A workers.celery_app worker`). See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
RUN pip install --no-cache-dir .

COPY alembic.ini ./
COPY migrations ./migrations

# Non-root. It owns /app only so that the default SQLite database (./tether.db) can be created
# when the image runs without DATABASE_URL.
RUN useradd --create-home --uid 10001 tether && chown tether /app
USER tether

EXPOSE 8000
# Exec form: the server is PID 1 and receives SIGTERM itself. WEB_CONCURRENCY=N: N processes.
CMD ["tether", "serve", "--host", "0.0.0.0", "--port", "8000"]
