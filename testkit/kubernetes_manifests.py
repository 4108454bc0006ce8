"""deploy/kubernetes as the tests read it: each folder built by kustomize (or `kubectl kustomize`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest version still maintained upstream when this was written


def kustomize(folder: Path) -> list[dict]:
    """The documents a folder builds to; skipped without kustomize or kubectl (a failure where
    SEGMENTER_REQUIRE_KUSTOMIZE=1, as in CI)."""
    if shutil.which("kustomize"):
        command = ["kustomize", "build", str(folder)]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(folder)]
    else:
        if os.environ.get("SEGMENTER_REQUIRE_KUSTOMIZE") == "1":
            pytest.fail("neither kustomize nor kubectl is on PATH")
        pytest.skip("neither kustomize nor kubectl is on PATH")
    built = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}
