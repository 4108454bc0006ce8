"""`segmenter predict --engine ray` on a real two-node Ray cluster (CPU, on this machine).

The outputs must equal the local engine's, file for file, byte for byte; actors must run on
both nodes; and with one actor killed mid-run (SIGKILL, as a crashed or preempted worker),
every output must still appear exactly once, with nothing half-written left behind.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.main import main

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
psutil = pytest.importorskip("psutil")

from jobs.ray_engine import RayJob, run_ray  # noqa: E402
from jobs.storage import PARTIAL, InputError, list_inputs  # noqa: E402
from model.options import SegmentOptions  # noqa: E402
from training.data.synthetic import render  # noqa: E402

DEMO = str(Path(__file__).resolve().parents[2] / "models" / "demo-seg-t16")
SCENES = 40


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 150 * 2**20})
    cluster.add_node(num_cpus=2, object_store_memory=150 * 2**20)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """40 synthetic scenes in nested folders, two that would share a name, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(5)
    for i in range(SCENES - 1):
        rgb, _ = render(320, rng)
        path = folder / ("sub" if i % 3 == 0 else ".") / f"scene{i:02d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rgb).save(path)
    Image.fromarray(render(320, rng)[0]).save(folder / "scene01.jpg", quality=95)  # clashes with scene01.png
    (folder / "notes.txt").write_text("not an image")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_outputs(scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    assert main(["predict", str(scenes), "--checkpoint", DEMO, "--out", str(out), "--overlay", "--scale", "none"]) == 0
    return out


def _job(out: Path, **changes) -> RayJob:
    options = {"outputs": ("mask", "overlay"), "options": SegmentOptions(scale="none"), "actors": 2,
               "images_per_batch": 2} | changes
    return RayJob(checkpoint=DEMO, out=str(out), **options)


def test_inputs_are_named_as_the_local_engine_names_them(scenes, tmp_path):
    listing = list_inputs(str(scenes))
    assert len(listing.images) == SCENES and [Path(s).name for s in listing.skipped] == ["notes.txt"]
    # A list file: relative entries are relative to the list's folder; names below the common folder.
    listed = scenes / "list.txt"
    listed.write_text("sub/scene00.png\n# a comment\n\nscene01.png\n" + str(scenes / "sub" / "scene03.png") + "\n")
    from_list = list_inputs(str(listed))
    assert [i.location for i in from_list.images] == [str(scenes / p) for p in ["sub/scene00.png", "scene01.png",
                                                                                 "sub/scene03.png"]]
    assert [i.relative for i in from_list.images] == ["sub/scene00.png", "scene01.png", "sub/scene03.png"]
    listed.write_text("scene01.png\n./scene01.png\n")
    with pytest.raises(InputError, match="more than once"):
        list_inputs(str(listed))
    listed.unlink()
    # A URI: the filesystem is made from it once; object names with spaces, '#' and '%' survive.
    odd = tmp_path / "odd"
    odd.mkdir()
    for name in ["a b.png", "c#1.png", "d%20e.png"]:
        (odd / name).write_bytes((scenes / "scene02.png").read_bytes())
    uri = list_inputs(odd.as_uri())
    assert sorted(i.relative for i in uri.images) == ["a b.png", "c#1.png", "d%20e.png"]
    single = list_inputs((odd / "a b.png").as_uri())  # file:///.../a%20b.png
    assert [i.relative for i in single.images] == ["a b.png"]
    with pytest.raises(InputError, match="percent-encode"):
        list_inputs("file://" + str(odd / "a b.png"))
    with pytest.raises(InputError, match="does not exist"):
        list_inputs((tmp_path / "nowhere").as_uri())


def test_outputs_equal_the_local_engine_file_for_file_on_both_nodes(cluster, scenes, local_outputs, tmp_path):
    result = run_ray(_job(tmp_path / "ray"), str(scenes), progress=False)
    assert result.written == SCENES and not result.failures
    assert len(result.nodes) == 2  # actors on the head and on the worker node
    expected, got = _files(local_outputs), _files(tmp_path / "ray")
    assert sorted(got) == sorted(expected) and "scene01.jpg.png" in got and "sub/scene00_overlay.png" in got
    assert all(got[name] == expected[name] for name in expected)


def test_coco_results_equal_the_local_engines(cluster, scenes, tmp_path):
    assert main(["predict", str(scenes), "--checkpoint", DEMO, "--out", str(tmp_path / "local"), "--format", "coco",
                 "--scale", "none"]) == 0
    result = run_ray(_job(tmp_path / "ray", outputs=("coco",)), str(scenes), progress=False)
    assert result.coco == json.loads((tmp_path / "local" / "predictions.json").read_text())
    assert _files(tmp_path / "ray").keys() == {"predictions.json"}


def _segment_actor_pids() -> list[int]:
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("SegmentActor" in part for part in process.info["cmdline"] or []):
            pids.append(process.info["pid"])
    return pids


def test_a_killed_actor_loses_nothing_and_writes_nothing_twice(cluster, scenes, local_outputs, tmp_path):
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one_actor_once_work_has_started() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if out.is_dir() and sum(1 for _ in out.rglob("*_overlay.png")) >= 3:
                pids = _segment_actor_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_actor_once_work_has_started)
    killer.start()
    result = run_ray(_job(out, images_per_batch=1), str(scenes), progress=False)
    killer.join()
    assert killed, "no actor was killed: the run finished before any output appeared"
    assert result.written == SCENES and not result.failures
    expected, got = _files(local_outputs), _files(out)
    assert sorted(got) == sorted(expected)  # every output once: no duplicates, no leftovers
    assert all(got[name] == expected[name] for name in expected)
    assert not list(out.rglob(f"*{PARTIAL}"))


def test_options_of_the_other_engine_are_errors(scenes, tmp_path, capsys):
    assert main(["predict", str(scenes), "--checkpoint", DEMO, "--out", str(tmp_path), "--actors", "3"]) == 2
    assert "--actors only apply to --engine ray" in capsys.readouterr().err
    assert main(["predict", str(scenes), "--checkpoint", DEMO, "--out", str(tmp_path), "--engine", "ray",
                 "--device", "cuda"]) == 2
    assert "--device does not apply to --engine ray" in capsys.readouterr().err
    assert main(["predict", "s3://bucket/images", "--checkpoint", DEMO, "--out", str(tmp_path)]) == 2
    assert "use --engine ray" in capsys.readouterr().err
    assert main(["predict", str(scenes), "--checkpoint", DEMO, "--out", str(tmp_path), "--engine", "ray",
                 "--images-per-batch", "0"]) == 2
    assert "--images-per-batch 0: must be at least 1" in capsys.readouterr().err


def test_a_bad_checkpoint_or_missing_gpus_stop_the_job_before_any_actor(cluster, scenes, tmp_path, capsys):
    ray_args = ["predict", str(scenes), "--out", str(tmp_path / "out"), "--engine", "ray"]
    assert main([*ray_args, "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main([*ray_args, "--checkpoint", DEMO, "--gpus-per-actor", "1"]) == 2
    assert "the Ray cluster has 0 GPU(s)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unreadable_image_is_reported_and_the_others_written(cluster, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(render(160, np.random.default_rng(1))[0]).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = run_ray(_job(tmp_path / "out"), str(folder), progress=False)
    assert result.written == 1 and len(result.failures) == 1 and "broken.jpg" in result.failures[0]
    assert sorted(_files(tmp_path / "out")) == ["good.png", "good_overlay.png"]


class _DiesOnScene05:
    """Kills its actor process whenever its batch holds scene05: a batch that can never succeed."""

    def __call__(self, batch):
        if any("scene05" in str(display) for display in batch["display"]):
            os._exit(1)
        return super().__call__(batch)


def test_a_batch_that_kills_every_actor_is_reported_not_retried_forever(cluster, scenes, tmp_path, monkeypatch):
    import jobs.ray_engine as ray_predict

    poisoned = type("SegmentActor", (_DiesOnScene05, ray_predict.SegmentActor), {"__module__": "__main__"})
    monkeypatch.setattr(ray_predict, "SegmentActor", poisoned)  # "__main__": Ray ships the class by value
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ["scene02.png", "scene04.png", "scene05.png", "scene07.png"]:
        (folder / name).write_bytes((scenes / name).read_bytes())
    result = run_ray(_job(tmp_path / "out", images_per_batch=2), str(folder), progress=False)
    assert result.written == 2 and sorted(Path(f.split(":")[0]).name for f in result.failures) == [
        "scene05.png", "scene07.png"]  # scene05's batch (05, 07): reported with its reason, the job went on
    assert all(f"failed {ray_predict.ACTOR_RETRIES + 1} times" in f for f in result.failures)
    assert sorted(_files(tmp_path / "out")) == ["scene02.png", "scene02_overlay.png", "scene04.png",
                                                "scene04_overlay.png"]
