"""`blend:` in the models file: the service merges windows as `Predictor(blend=...)` does."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model import Predictor, load_segmenter
from service.main import create_app
from service.model_specs import ModelsFileError
from tests.service.conftest import (
    encode,
    make_settings,
    post_image,
    random_image,
    standard_entries,
    started_client,
    write_models,
)


def test_a_models_file_blend_is_served_and_reported(checkpoints, tmp_path):
    client = started_client(create_app(make_settings(write_models(tmp_path, standard_entries(checkpoints,
                                                                                             blend="linear")))))
    try:
        listed = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert listed["tiny-16"]["blend"] == "linear"
        rgb = random_image(64, 150)  # three 64-px windows across, overlapping: the blend matters
        response = post_image(client, encode(rgb), model="tiny-16", output="mask", scale="none")
        assert response.status_code == 200, response.text
        mask = np.asarray(Image.open(io.BytesIO(response.content)))
        net = load_segmenter(checkpoints / "tiny-16")
        expected = Predictor(net, blend="linear").predict(rgb, scale="none")
        assert Predictor(net).predict(rgb, scale="none").tolist() != expected.tolist(), \
            "the image must be one whose answer the blend changes"
    finally:
        client.__exit__(None, None, None)
    np.testing.assert_array_equal(mask, expected)


def test_an_unknown_blend_names_the_entry_and_the_choices(checkpoints, tmp_path):
    entries = standard_entries(checkpoints)
    entries[0]["blend"] = "smooth"
    with pytest.raises(ModelsFileError, match=r"models\[tiny-16\]\.blend.*'uniform', 'linear' or 'gaussian'"):
        create_app(make_settings(write_models(tmp_path, entries)))
