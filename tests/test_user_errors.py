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
