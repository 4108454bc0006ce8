"""GET /: a page where a person drops an image and sees the overlay beside it, with a legend;
GET /favicon.ico: its icon (browsers ask for it: without one, every visit logs a 404)."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from PIL import Image

router = APIRouter(tags=["web page"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@router.get("/", response_class=HTMLResponse, summary="The web page")
async def index() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text())


@functools.cache
def _icon() -> bytes:
    """Four class colours in a square, as the page's inline SVG icon draws them; 16 and 32 pixels."""
    picture = Image.new("RGB", (32, 32), (120, 120, 120))
    for (x, y), colour in zip([(0, 0), (16, 0), (0, 16), (16, 16)], [(230, 75, 60), (70, 160, 90), (60, 110, 220),
                                                                    (245, 190, 40)], strict=True):
        picture.paste(colour, (x, y, x + 16, y + 16))
    buffer = io.BytesIO()
    picture.save(buffer, format="ICO", sizes=[(16, 16), (32, 32)])
    return buffer.getvalue()


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(_icon(), media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
