"""POST /attention: the maps `model.inference.image_attention` computes, as PNG
grids or JSON at patch resolution; the same limits and errors as /segment."""

from __future__ import annotations

import numpy as np
import torch

from model import Predictor, load_segmenter
from model.inference import image_attention
from tests.service.conftest import decode_png, encode, post_image, random_image, reference_predictor


def _post(client, data: bytes, **fields):
    form = {k: str(v) for k, v in fields.items()}
    return client.post("/attention", files={"image": ("x.png", data, "image/png")}, data=form)


def test_json_maps_equal_image_attention(client, checkpoints):
    rgb = random_image(70, 90, seed=5)
    body = _post(client, encode(rgb), layer=1, pixel="40,30", output="json").json()
    expected = image_attention(Predictor(load_segmenter(checkpoints / "tiny-16")), rgb, 1, "encoder", (40, 30))
    assert body["part"] == "encoder" and body["grid"] == list(expected.maps.grid) and body["pixel"] == [40, 30]
    torch.testing.assert_close(torch.tensor(body["heads"]), expected.token_maps.float(), atol=1e-6, rtol=0)
    decoder = _post(client, encode(rgb), layer=0, **{"class": "class2"}, output="json").json()
    assert decoder["part"] == "decoder" and decoder["class"] == 2


def test_png_grid_and_errors(client):
    rgb = random_image(70, 90, seed=6)
    picture = decode_png(_post(client, encode(rgb), layer=0, pixel="10,10").content)
    assert picture.mode == "RGB" and picture.size[0] >= 90 and picture.size[1] > 70  # one panel per head + titles
    assert _post(client, encode(rgb), layer=9, pixel="10,10").status_code == 422  # 2 layers only
    assert "outside" in _post(client, encode(rgb), layer=0, pixel="500,10").json()["error"]["message"]
    assert _post(client, encode(rgb), layer=0).status_code == 422  # neither pixel nor class
    assert _post(client, encode(rgb), layer=0, pixel="1,1", model="fast", part="decoder").status_code == 422  # linear
    assert _post(client, b"not an image", layer=0, pixel="1,1").status_code == 415
    assert _post(client, encode(rgb), layer=0, pixel="1,1", model="nope").status_code == 404
    assert _post(client, encode(rgb), layer=0, pixel="1,1", bogus="x").status_code == 422
    counted = client.get("/metrics").text  # each answer counted with the status the client got
    assert 'segmenter_requests_total{model="tiny-16",output="attention",status="200"} 1.0' in counted
    assert 'segmenter_requests_total{model="tiny-16",output="attention",status="422"} 3.0' in counted
    assert 'segmenter_requests_total{model="tiny-32",output="attention",status="422"} 1.0' in counted
    assert 'segmenter_requests_total{model="tiny-16",output="attention",status="415"} 1.0' in counted
    assert 'segmenter_requests_total{model="unknown",output="attention",status="404"} 1.0' in counted
    assert 'segmenter_requests_total{model="unknown",output="attention",status="422"} 1.0' in counted


def test_models_say_what_attention_can_ask(client):
    info = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert info["tiny-16"]["attention"] == {"encoder_layers": 2, "encoder_heads": 1, "decoder_layers": 2,
                                            "decoder_heads": 1}
    assert info["tiny-32"]["attention"]["decoder_layers"] == 0  # the linear decoder


def test_segment_answers_the_same_after_attention_on_the_same_model(client, checkpoints):
    rgb = random_image(64, 64, seed=8)
    assert _post(client, encode(rgb), model="tiny-16", layer=1, pixel="10,10").status_code == 200
    answer = post_image(client, encode(rgb), model="tiny-16")
    assert answer.status_code == 200  # the attention hooks are gone: the model segments as before
    np.testing.assert_array_equal(np.asarray(decode_png(answer.content)),
                                  reference_predictor(checkpoints, "tiny-16").predict(rgb))


def test_class_names_one_class(client):
    rgb = random_image(64, 64, seed=9)
    answer = _post(client, encode(rgb), layer=0, **{"class": "1,2"})
    assert answer.status_code == 422 and "one class" in answer.json()["error"]["message"]
    assert _post(client, encode(rgb), layer=0, **{"class": "CLASS1"}).status_code == 200  # names in any case


def test_a_timed_out_attention_keeps_its_memory_until_its_thread_ends(checkpoints, tmp_path, monkeypatch):
    import asyncio
    import threading

    from service.main import create_app
    from service.routes import attention
    from tests.service.conftest import make_settings, standard_entries, started_client, write_models

    release, real, calls = threading.Event(), attention.image_attention, []

    def held(*args, **kwargs):
        calls.append(1)
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(attention, "image_attention", held)
    # One pool thread: the second request waits behind the first one's held forward pass.
    app = create_app(make_settings(write_models(tmp_path, standard_entries(checkpoints)), request_timeout_s=0.3,
                                   preprocess_threads=1))
    client = started_client(app)
    try:
        served = app.state.pool.resolve("tiny-16")
        assert _post(client, encode(random_image(64, 64, seed=3)), layer=0, pixel="5,5").status_code == 504
        assert served.admission.reserved_bytes > 0  # the forward pass still runs on its thread, holding memory
        assert _post(client, encode(random_image(64, 64, seed=4)), layer=0, pixel="5,5").status_code == 504
        release.set()

        async def abandoned_requests_finish() -> None:
            await asyncio.gather(*app.state.abandoned, return_exceptions=True)

        client.portal.call(abandoned_requests_finish)
        assert served.admission.reserved_bytes == 0  # released once the thread is done, not before
        assert calls == [1]  # the queued one never ran: its request had ended
        assert _post(client, encode(random_image(64, 64, seed=3)), layer=0, pixel="5,5").status_code == 200
    finally:
        release.set()
        client.__exit__(None, None, None)
