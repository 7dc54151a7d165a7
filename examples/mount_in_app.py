"""tusserver mounted inside a FastAPI or Starlette application, next to its own routes.

Run: uvicorn examples.mount_in_app:app --port 8080
Uploads go to http://127.0.0.1:8080/api/uploads/ ; Location headers include the mount path.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tusserver import Settings, create_app

tus = create_app(Settings(base_path="/", data_dir="data"))


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


# With FastAPI the same line is `app.mount("/api/uploads", tus)`.
app = Starlette(routes=[Route("/health", health), Mount("/api/uploads", app=tus)])
