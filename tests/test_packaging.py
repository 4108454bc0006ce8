"""The package metadata installs without warnings: `pip install -e .` printed setuptools'
`project.license` deprecation three times (issue 27)."""

from __future__ import annotations

import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_pyproject_reads_without_deprecation_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any SetuptoolsDeprecationWarning fails the test, naming the key
        dist = apply_configuration(Distribution(), PYPROJECT)
    assert dist.get_name() == "segmenter"
