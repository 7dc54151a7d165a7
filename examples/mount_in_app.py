"""tusserver mounted inside a FastAPI or Starlette application, next to its own routes.

Run: uvicorn examples.mount_in_app:app --port 8080
Uploads go to http://127.0.0.1:8080/api/uploads/ ; Location headers include the mount path.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tusserver import Settings, create_app

tus = create_app(Settings(base_path="/", data_dir="data"))


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # A mounted app gets no lifespan of its own: run it from yours, for its background work (hooks, cleanup,
    # Redis lock releases) and to close its state and storage at exit.
    async with tus.router.lifespan_context(tus):
        yield


# With FastAPI: `app = FastAPI(lifespan=lifespan)`, then `app.mount("/api/uploads", tus)`.
app = Starlette(routes=[Route("/health", health), Mount("/api/uploads", app=tus)], lifespan=lifespan)
