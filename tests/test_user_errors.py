"""Every mistake a user can make on the command line: exit code 2, one message naming the problem
and the fix, no traceback (`segmenter --debug` shows it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from model import save_checkpoint
from tests.conftest import tiny_segmenter

ROOT = Path(__file__).resolve().parents[1]


def _fails_cleanly(capsys, argv: list[str], *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err and "--debug" in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_a_missing_models_file(capsys, tmp_path):
    _fails_cleanly(capsys, ["serve", "--models", str(tmp_path / "nope.yaml")], "nope.yaml does not exist",
                   "--models")


def test_a_typo_in_the_models_file(capsys, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: a, checkpoint: x, backnd: torch}\n")
    _fails_cleanly(capsys, ["serve", "--models", str(path)], "models[a].backnd", "Extra inputs are not permitted")


def test_resume_with_no_run(capsys, tmp_path):
    _fails_cleanly(capsys, ["train", "--config", "training/configs/demo.yaml", "--resume",
                            f"run.out_dir={tmp_path / 'run'}"], "nothing to resume", "without --resume")


def test_a_typo_in_model_overrides(capsys, tmp_path):
    _fails_cleanly(capsys, ["train", "--config", "training/configs/demo.yaml", "model.overrides={dpeth: 2}",
                            f"run.out_dir={tmp_path / 'run'}"], "unknown config key model.overrides.dpeth")


def test_an_ade20k_config_without_the_data(capsys, tmp_path):
    _fails_cleanly(capsys, ["train", "--config", "training/configs/ade20k_seg_t_mask_16.yaml",
                            f"data.root={tmp_path / 'ADEChallengeData2016'}", "run.device=cpu",
                            f"run.out_dir={tmp_path / 'run'}"], "does not exist", "python -m training.prepare.ade20k")


def test_a_run_folder_given_as_checkpoint(capsys, tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "runs" / "x" / "best")
    (tmp_path / "img.png").write_bytes(b"")
    _fails_cleanly(capsys, ["predict", str(tmp_path / "img.png"), "--checkpoint", str(tmp_path / "runs" / "x"),
                            "--out", str(tmp_path / "out")], "training run folder", "runs/x/best")


def test_eval_on_a_mistyped_synthetic_root(capsys, tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    _fails_cleanly(capsys, ["eval", "--checkpoint", str(tmp_path / "ckpt"), "--dataset", "synthetic",
                            "--data-root", str(tmp_path / "synthetc"), "--device", "cpu"], "no synthetic dataset")
    assert not (tmp_path / "synthetc").exists()  # nothing was generated there


def test_debug_shows_the_traceback(tmp_path):
    from service.model_specs import ModelsFileError

    with pytest.raises(ModelsFileError):
        main(["--debug", "serve", "--models", str(tmp_path / "nope.yaml")])


def test_a_real_process_prints_one_paragraph(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models: [unclosed")
    proc = subprocess.run([sys.executable, "-m", "cli", "serve", "--models", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") <= 6 and "not valid YAML" in proc.stderr


def test_version():
    proc = subprocess.run([sys.executable, "-m", "cli", "--version"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("segmenter 0.")


@pytest.mark.parametrize("flag, fragment", [
    (["--output", "mask,bogus"], "unknown output 'bogus'; choose from mask, overlay, json, confidence, coco"),
    (["--scale", "abc"], "--scale: scale must be a short side in pixels (1..16384) or none, got 'abc'"),
    (["--alpha", "2"], "--alpha: Input should be less than or equal to 1"),
    (["--output", "mask", "--overlay"], "--overlay and --format are aliases of --output: give --output alone"),
])
def test_predict_options_name_the_flag(capsys, tmp_path, flag, fragment):
    _fails_cleanly(capsys, ["predict", str(tmp_path), "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o"),
                            *flag], fragment)


def test_predict_never_lets_an_images_json_overwrite_the_coco_file(capsys, tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "predictions.png")
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    _fails_cleanly(capsys, ["predict", str(tmp_path / "predictions.png"), "--checkpoint", str(tmp_path / "ckpt"),
                            "--out", str(tmp_path / "o"), "--output", "json,coco"], "would write predictions.json")


@pytest.mark.parametrize("decoder, flags, fragment", [
    ("linear", ["--class", "class1"], "no class tokens: --class needs a mask-transformer model; use --pixel X,Y"),
    ("linear", ["--pixel", "5,5", "--part", "decoder"], "no attention layers and no class tokens: use --part encoder"),
    ("mask_transformer", ["--class", "class1", "--part", "encoder"], "class tokens live in the decoder; drop --part"),
])
def test_attention_speaks_in_flags(capsys, tmp_path, decoder, flags, fragment):
    from PIL import Image

    save_checkpoint(tiny_segmenter(decoder=decoder), tmp_path / "ckpt")
    Image.new("RGB", (32, 32)).save(tmp_path / "img.png")
    err = _fails_cleanly(capsys, ["attention", str(tmp_path / "img.png"), "--checkpoint", str(tmp_path / "ckpt"),
                                  "--layer", "0", "--out", str(tmp_path / "out"), *flags], fragment)
    assert "part=" not in err  # the library's Python wording


@pytest.mark.parametrize("command", [["attention", "img.png", "--layer", "0", "--pixel", "1,1", "--out", "o"],
                                     ["eval", "--dataset", "synthetic", "--data-root", "d"]])
def test_a_bad_scale_names_the_flag(capsys, tmp_path, command):
    _fails_cleanly(capsys, [*command, "--checkpoint", str(tmp_path), "--scale", "abc"],
                   "--scale: scale must be a short side in pixels (1..16384) or none, got 'abc'")


def test_predict_coco_alone_says_nothing_of_per_image_names(capsys, tmp_path):
    from PIL import Image

    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    (tmp_path / "images").mkdir()
    for name in ("x.jpg", "x.png"):  # two images whose mask files would both be x.png
        Image.new("RGB", (32, 32)).save(tmp_path / "images" / name)
    assert main(["predict", str(tmp_path / "images"), "--checkpoint", str(tmp_path / "ckpt"), "--out",
                 str(tmp_path / "o"), "--output", "coco"]) == 0
    err = capsys.readouterr().err
    assert "shares its name" not in err and "its outputs" not in err  # predictions.json names no file after one
    assert main(["predict", str(tmp_path / "images"), "--checkpoint", str(tmp_path / "ckpt"), "--out",
                 str(tmp_path / "o2"), "--output", "coco,mask"]) == 0
    assert "x.jpg shares its name with another image" in capsys.readouterr().err  # its mask is x.jpg.png


def test_predict_help_names_mmsegmentation_checkpoints():
    proc = subprocess.run([sys.executable, "-m", "cli", "predict", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "MMSegmentation .pth" in " ".join(proc.stdout.split())
