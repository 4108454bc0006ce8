"""One image reader for every caller: `segmenter predict` and POST /segment give the same mask
for the same file, whatever its pixel format (alpha, 16-bit, palette transparency, CMYK, EXIF)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

from cli.main import main
from model import image_size, read_image
from tests.service.conftest import decode_png, encode, post_image, random_image


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _files() -> dict[str, bytes]:
    rgb = random_image(70, 90, seed=31)
    alpha = np.tile(np.linspace(0, 255, 90, dtype=np.uint8), (70, 1))  # transparent on the left
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    palette = Image.fromarray(rgb).quantize(16)
    palette.info["transparency"] = 3  # one palette entry is transparent
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise": stored 70×90, seen 90×70
    return {
        "rgba.png": _save(rgba, "PNG"),
        "la.png": _save(rgba.convert("LA"), "PNG"),
        "gray16.png": encode(np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257),
        "palette-transparent.png": _save(palette, "PNG", transparency=3),
        "cmyk.jpg": _save(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95),
        "exif-rotated.jpg": _save(Image.fromarray(rgb), "JPEG", quality=95, exif=exif.tobytes()),
    }


FILES = _files()


@pytest.mark.parametrize("name", list(FILES))
def test_cli_and_service_give_the_same_mask(client, checkpoints, tmp_path, name):
    source = tmp_path / "in" / name
    source.parent.mkdir()
    source.write_bytes(FILES[name])
    assert main(["predict", str(source), "--checkpoint", str(checkpoints / "tiny-16"), "--out",
                 str(tmp_path / "out")]) == 0
    from_cli = np.asarray(Image.open(tmp_path / "out" / f"{source.stem}.png"))
    response = post_image(client, FILES[name], model="tiny-16")
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(np.asarray(decode_png(response.content)), from_cli)


def test_alpha_is_composited_over_white_and_exif_rotates():
    rgba = read_image(FILES["rgba.png"])
    assert rgba.shape == (70, 90, 3) and (rgba[:, 0] == 255).all()  # fully transparent column: white
    assert read_image(FILES["exif-rotated.jpg"]).shape == (90, 70, 3)
    assert image_size(FILES["exif-rotated.jpg"]) == (90, 70)  # from the header, already oriented
    transparent = read_image(FILES["palette-transparent.png"])
    palette = Image.open(io.BytesIO(FILES["palette-transparent.png"]))
    assert (transparent[np.asarray(palette) == 3] == 255).all()
    gray = read_image(FILES["gray16.png"])  # 16-bit v·257 rescaled back to v, not clipped at 255
    expected = np.asarray(Image.fromarray(random_image(70, 90, seed=31)).convert("L"))
    np.testing.assert_array_equal(gray, np.repeat(expected[..., None], 3, axis=2))


XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


def _png_with_orientation(rgb: np.ndarray, where: str, after_pixels: bool) -> bytes:
    """A PNG rotated 90° (orientation 6) by an eXIf chunk or by XMP (an iTXt chunk), before the
    image data (where Pillow writes them) or moved after it, where the PNG extensions allow it."""
    buffer = io.BytesIO()
    if where == "eXIf":
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(rgb).save(buffer, format="PNG", exif=exif)
    else:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP)
        Image.fromarray(rgb).save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    start = data.index(where.encode()) - 4
    end = start + 12 + int.from_bytes(data[start:start + 4], "big")
    if not after_pixels:
        return data
    chunk, rest = data[start:end], data[:start] + data[end:]
    iend = rest.index(b"IEND") - 4
    return rest[:iend] + chunk + rest[iend:]


@pytest.mark.parametrize("after_pixels", [False, True])
@pytest.mark.parametrize("where", ["eXIf", "iTXt"])
def test_a_png_s_size_and_orientation_come_from_its_chunks(tmp_path, monkeypatch, where, after_pixels):
    """The header check sees the orientation `read_image` applies, wherever it is; when it is
    before the pixels (as writers put it) it decodes no pixel to find it."""
    data = _png_with_orientation(random_image(30, 50, seed=32), where, after_pixels)
    path = tmp_path / "rotated.png"
    path.write_bytes(data)
    assert read_image(data).shape == (50, 30, 3)
    with monkeypatch.context() as patched:
        if not after_pixels:
            patched.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("image_size decoded the pixels"))
        assert image_size(data) == image_size(path) == (50, 30)
