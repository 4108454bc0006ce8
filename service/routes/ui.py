"""GET /: a page where a person drops an image and sees the overlay beside it, with a legend."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["web page"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@router.get("/", response_class=HTMLResponse, summary="The web page")
async def index() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text())
