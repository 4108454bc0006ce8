"""One output vocabulary: `POST /segment output=K` and `segmenter predict --output K` give the
same bytes for the same image and options, for every per-image output, and the CLI's COCO file
holds the annotations the JSON output gives."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from model.outputs import FILE_SUFFIXES, IMAGE_OUTPUTS
from tests.service.conftest import encode, post_image, random_image


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photo")
    (folder / "photo.png").write_bytes(encode(random_image(70, 150, seed=21)))  # 3 windows, overlapping
    return folder / "photo.png"


@pytest.mark.parametrize("options", [{}, {"classes": "class1,class3", "alpha": "0.3"}], ids=["plain", "selected"])
@pytest.mark.parametrize("kind", IMAGE_OUTPUTS)
def test_the_cli_writes_the_bytes_the_service_answers(kind, options, photo, client, checkpoints, tmp_path):
    out = tmp_path / "out"
    flags = [f"--{k}={v}" for k, v in options.items()]
    assert main(["predict", str(photo), "--checkpoint", str(checkpoints / "tiny-16"), "--out", str(out),
                 "--output", kind, *flags]) == 0
    answer = post_image(client, photo.read_bytes(), model="tiny-16", output=kind, **options)
    assert answer.status_code == 200, answer.text
    written = sorted(p.name for p in out.iterdir())
    assert written == ["photo" + FILE_SUFFIXES[kind]]
    assert (out / written[0]).read_bytes() == answer.content


def test_the_coco_file_holds_the_json_outputs_annotations(photo, client, checkpoints, tmp_path):
    assert main(["predict", str(photo), "--checkpoint", str(checkpoints / "tiny-16"), "--out", str(tmp_path),
                 "--output", "coco"]) == 0
    coco = json.loads((tmp_path / "predictions.json").read_text())
    answer = post_image(client, photo.read_bytes(), model="tiny-16", output="json").json()
    strip = ("image_id", "id", "name", "iscrowd")  # what a COCO document adds per annotation
    assert [{k: v for k, v in a.items() if k not in strip} for a in coco["annotations"]] == \
        [{k: v for k, v in a.items() if k not in strip} for a in sorted(answer["annotations"],
                                                                          key=lambda a: a["category_id"])]
