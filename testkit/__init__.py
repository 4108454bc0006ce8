"""Helpers that both `tests/` and `benchmarks/` use, so neither imports the other.

official_segmenter.py   an independent re-implementation of the authors' forward pass (the oracle)
official_files.py       checkpoints written in the authors' release layout
official_inference.py   the authors' sliding-window inference, as a test oracle
hostile_inputs.py       hostile uploads and the answer the service owes each
tiny_training.py        the laptop-sized training config of the training and reliability tests
mmseg_reference.py      MMSegmentation 1.2.2's own Segmenter, from its shrunk config files (the mmseg oracle)
mmseg_parity.py         our loading of mmseg files vs mmseg itself: the test's and the benchmark's measurements
mmseg_checkpoints.py    mmseg-layout checkpoints from our tiny nets (key renaming, mmseg numerics), no mmseg needed
zoo_files.py            weights as a registry publishes them, and a registry naming them, for the download tests

Never installed: a development aid, not part of the package.
"""
