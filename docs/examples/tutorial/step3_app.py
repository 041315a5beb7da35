"""Tutorial step 3: the chat in a browser, a page served next to the GraphQL path.

uvicorn step3_app:app, then open http://127.0.0.1:8000/ in two windows.
"""

from pathlib import Path

from fastapi.responses import FileResponse
from step2_app import app, manager

PAGE = Path(__file__).parent / "chat.html"


@app.get("/", include_in_schema=False)
async def chat_page() -> FileResponse:
    return FileResponse(PAGE)


__all__ = ["app", "manager"]
