"""The reference point for create: a FastAPI handler doing one upstream call and one insert.

DESIGN §7 measured such a handler at ~20-23% of the fake upstream's direct rate. Serve it with
    uvicorn --app-dir bench minimal_handler:app --port 8001
(env: UPSTREAM_BASE_URL, DATABASE_URL as for Tether), then load it like Tether's create:
    python bench/responses_bench.py --api http://127.0.0.1:8001 --only "create (store=true)"
Its table is created on start-up; it stores only an id and the reply text.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

UPSTREAM = os.environ.get("UPSTREAM_BASE_URL", "http://127.0.0.1:9100/v1")
DATABASE = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DATABASE, min_size=16, max_size=32)
    await app.state.pool.execute(
        "CREATE TABLE IF NOT EXISTS minimal_handler (id text PRIMARY KEY, body jsonb)"
    )
    app.state.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    yield
    await app.state.http.close()
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/responses")
async def create(request: Request) -> Response:
    body = orjson.loads(await request.body())
    payload = {"model": body["model"], "messages": [{"role": "user", "content": body["input"]}]}
    async with request.app.state.http.post(
        f"{UPSTREAM}/chat/completions",
        data=orjson.dumps(payload),
        headers={"content-type": "application/json"},
    ) as upstream:
        completion = orjson.loads(await upstream.read())
    text = completion["choices"][0]["message"]["content"]
    rid = f"resp_{uuid.uuid4().hex}"
    await request.app.state.pool.execute(
        "INSERT INTO minimal_handler (id, body) VALUES ($1, $2::jsonb)",
        rid,
        orjson.dumps({"text": text}).decode(),
    )
    return Response(orjson.dumps({"id": rid, "output_text": text}), media_type="application/json")
