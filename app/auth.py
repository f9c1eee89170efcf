"""Who is asking. One default project until API keys arrive; every repository call takes the id
this returns, so tenant isolation later changes where the id comes from, not the queries.

Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in its thread pool, which
cost more than a whole indexed lookup on the retrieve path."""

from typing import Annotated

from fastapi import Depends, Request


async def get_project_id(request: Request) -> str:
    project_id: str = request.app.state.settings.default_project_id
    return project_id


ProjectDep = Annotated[str, Depends(get_project_id)]
