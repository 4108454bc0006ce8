"""Helpers that both `tests/` and `benchmarks/` use, so neither imports the other.

official_segmenter.py   an independent re-implementation of the authors' forward pass (the oracle)
official_files.py       checkpoints written in the authors' release layout
official_inference.py   the authors' sliding-window inference, as a test oracle
hostile_inputs.py       hostile uploads and the answer the service owes each
tiny_training.py        the laptop-sized training config of the training and reliability tests

Never installed: a development aid, not part of the package.
"""
