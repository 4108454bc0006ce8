"""The datasets training reads: on-disk layouts (layouts.py), the generated synthetic set
(synthetic.py), and what they share (base.py)."""

from model.class_sets import DATASETS as BUNDLED_DATASETS

# The layouts training reads: the bundled datasets (their classes ship with `model`), plus
# custom data and the generated synthetic set. Here, not in layouts.py (which imports torch), so
# `segmenter eval --help` lists them without torch's start-up.
DATASETS = (*BUNDLED_DATASETS, "custom", "synthetic")
