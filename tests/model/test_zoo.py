"""Weights by name: every registry entry well formed; fetches verified, resumable, converted,
cached, mirrored — against a local HTTP server the test starts (loopback only)."""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest
import torch

from cli.main import main
from model import get_variant, load_segmenter, variant_config
from model.class_sets import DATASETS
from model.zoo import ZooError, fetch, load_registry
from testkit.zoo_files import write_registry
from tests.weights_server import WeightsServer

REGISTRY = load_registry()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_entry_is_well_formed(name):
    entry = REGISTRY[name]
    variant_config(get_variant(entry.architecture).name, num_classes=entry.classes, image_size=entry.window)
    assert entry.dataset in DATASETS and 0 < entry.stride <= entry.window
    assert entry.test_scale and entry.miou["single"] and entry.license
    for file in entry.files:
        url = urllib.parse.urlparse(file.url)
        assert url.scheme == "https" and url.netloc and url.path.startswith("/"), file.url
        if file.sha256_prefix:  # torch.hub's convention: the file name ends in the hash's first 8 hex digits
            assert re.fullmatch(r"[0-9a-f]{8}", file.sha256_prefix)
            assert re.search(rf"-{file.sha256_prefix}\.pth$", file.file_name), file.file_name
    if entry.source == "official":
        assert [f.file_name for f in entry.files] == ["checkpoint.pth", "variant.yml"]
        assert entry.status == "host-unreachable"  # says so in `weights list`
    else:
        assert len(entry.files) == 1 and entry.files[0].sha256_prefix


def test_the_bundled_registry_names_the_five_mmseg_ade20k_models():
    mmseg = {e.architecture for e in REGISTRY.values() if e.source == "mmsegmentation"}
    assert mmseg == {"Seg-T-Mask/16", "Seg-S/16", "Seg-S-Mask/16", "Seg-B-Mask/16", "Seg-L-Mask/16"}
    official = [e for e in REGISTRY.values() if e.source == "official"]
    assert len(official) == 9 and {e.dataset for e in official} == set(DATASETS)


def test_fetch_converts_and_a_second_fetch_is_instant(tmp_path, published):
    files, prefix, net = published
    with WeightsServer(files=dict(files)) as server:
        registry = [write_registry(tmp_path, server.url, prefix)]
        folder = fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry)
        assert folder == tmp_path / "cache" / "models" / "tiny-mmseg"
        loaded = load_segmenter(folder)
        x = torch.randn(1, 3, 64, 64)
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x), net(x))
        provenance = loaded.metadata.provenance
        assert provenance["zoo"] == "tiny-mmseg" and provenance["url"].endswith(f"-{prefix}.pth")
        assert provenance["sha256"].startswith(prefix) and provenance["published_miou"] == {"single": 12.3,
                                                                                            "multi": 13.4}
        official = load_segmenter(fetch("tiny-official", tmp_path / "cache", registry_files=registry))
        assert official.metadata.provenance["zoo"] == "tiny-official" and official.metadata.test_scale == (256, 64)
        count = len(server.requests)
        assert fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry) == folder
        assert len(server.requests) == count  # idempotent: nothing downloaded again
        assert not (tmp_path / "cache" / "downloads" / "tiny-mmseg").exists()  # downloads removed once converted


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_an_interrupted_download_never_becomes_a_checkpoint_and_the_next_fetch_completes(tmp_path, published,
                                                                                         ranges):
    files, prefix, _ = published
    path = f"/zoo/tiny_mmseg_20260101-{prefix}.pth"
    half = len(files[path]) // 2
    with WeightsServer(files=dict(files), ranges=ranges, drop_after={path: half}) as server:
        registry = [write_registry(tmp_path, server.url, prefix)]
        with pytest.raises(ZooError, match="run again to resume"):
            fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry)
        assert not (tmp_path / "cache" / "models" / "tiny-mmseg").exists()
        part = tmp_path / "cache" / "downloads" / "tiny-mmseg" / (path.rsplit("/", 1)[1] + ".part")
        assert part.stat().st_size == half and not part.with_suffix("").exists()
        folder = fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry)
        assert server.requests[-1] == (path, f"bytes={half}-")  # asked for the rest
        assert load_segmenter(folder).metadata.provenance["sha256"].startswith(prefix)


def test_a_hash_mismatch_is_rejected_and_nothing_is_left(tmp_path, published):
    files, prefix, _ = published
    with WeightsServer(files=dict(files)) as server:
        registry = [write_registry(tmp_path, server.url, prefix, wrong_hash=True)]
        with pytest.raises(ZooError, match="not the expected 00000000.*deleted"):
            fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []


def test_the_mirror_replaces_scheme_and_host(tmp_path, published, monkeypatch):
    files, prefix, _ = published
    with WeightsServer(files={f"/mirror{k}": v for k, v in files.items()}) as server:
        registry = write_registry(tmp_path, "https://weights.example.invalid", prefix)  # a dead host
        monkeypatch.setenv("SEGMENTER_WEIGHTS_MIRROR", f"{server.url}/mirror")
        monkeypatch.setenv("SEGMENTER_WEIGHTS_REGISTRY", registry)
        monkeypatch.setenv("SEGMENTER_CACHE_DIR", str(tmp_path / "cache"))
        assert main(["weights", "fetch", "tiny-mmseg"]) == 0
        assert server.requests[0][0] == f"/mirror/zoo/tiny_mmseg_20260101-{prefix}.pth"
        assert load_segmenter(tmp_path / "cache" / "models" / "tiny-mmseg").num_classes == 150


def test_no_network_is_a_clear_failure_naming_the_url(tmp_path, published, capsys):
    _, prefix, _ = published
    registry = [write_registry(tmp_path, "http://127.0.0.1:9", prefix)]  # nothing listens on the discard port
    with pytest.raises(ZooError) as info:
        fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry)
    message = str(info.value)
    assert f"http://127.0.0.1:9/zoo/tiny_mmseg_20260101-{prefix}.pth" in message
    assert "segmenter weights fetch tiny-mmseg" in message and "SEGMENTER_WEIGHTS_MIRROR" in message


def test_weights_list_shows_every_entry(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGMENTER_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["weights", "list"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in REGISTRY) and "host unreachable since 2024" in table
    assert main(["weights", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in listed["weights"]] == list(REGISTRY)
    assert not any(w["cached"] for w in listed["weights"]) and listed["cache_dir"] == str(tmp_path / "cache")
    assert main(["weights", "fetch", "no-such-model"]) == 2
    assert "no checkpoint named 'no-such-model'" in capsys.readouterr().err



def test_weights_list_shows_sizes_in_columns_as_wide_as_their_contents(tmp_path, capsys, monkeypatch):
    import yaml

    mine = {"name": "my-own-ade20k-seg-t-mask-16-fine-tuned-on-my-photos", "source": "custom",
            "architecture": "Seg-T-Mask/16", "dataset": "ade20k", "classes": 150, "window": 512, "stride": 480,
            "test_scale": [2048, 512], "miou": {"single": 41.0, "multi": 42.0}, "size_bytes": 27_000_000,
            "license": "MIT", "status": "available", "note": "", "files": [{"url": "https://example.invalid/m.pth"}]}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump([mine]))
    monkeypatch.setenv("SEGMENTER_WEIGHTS_REGISTRY", str(tmp_path / "mine.yaml"))
    monkeypatch.setenv("SEGMENTER_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["weights", "list"]) == 0
    header, *rows, _ = capsys.readouterr().out.splitlines()
    source, size_end = header.index("source"), header.index("size") + len("size")
    sizes = {}
    for row in rows:
        name = row.split()[0]
        assert row[source - 2:source] == "  " and row[source:].split()[0] in ("mmsegmentation", "official", "custom")
        sizes[name] = row[:size_end].rsplit("  ", 1)[1].strip()  # right-aligned under "size"
        assert row[size_end:size_end + 2] == "  ", row
    assert sizes[mine["name"]] == "27 MB"  # published: as it is
    assert sizes["ade20k-seg-l-mask-16"] == "~1,333 MB" and sizes["official-ade20k-seg-t-mask-16"] == "~27 MB"
    assert all(re.fullmatch(r"~?[\d,]+ MB", size) for size in sizes.values()), sizes  # no "?" left


def test_a_failing_mirror_is_named_and_not_suggested_again(tmp_path, published, monkeypatch):
    _, prefix, _ = published
    registry = [write_registry(tmp_path, "https://weights.example.invalid", prefix)]
    monkeypatch.setenv("SEGMENTER_WEIGHTS_MIRROR", "http://127.0.0.1:9/mirror")  # nothing listens there
    with pytest.raises(ZooError) as info:
        fetch("tiny-mmseg", tmp_path / "cache", registry_files=registry)
    message = str(info.value)
    assert f"http://127.0.0.1:9/mirror/zoo/tiny_mmseg_20260101-{prefix}.pth" in message
    assert "the weights mirror http://127.0.0.1:9/mirror (SEGMENTER_WEIGHTS_MIRROR)" in message
    assert "or set SEGMENTER_WEIGHTS_MIRROR" not in message and "unset SEGMENTER_WEIGHTS_MIRROR" in message
