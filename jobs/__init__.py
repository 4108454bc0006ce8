"""Segmenting many images: folders, list files and object stores, on this machine or on Ray.

    inputs.py        which files a job reads and the name each image's outputs take
    per_image.py     what every engine does with one image (segment, render, name the files)
    local_engine.py  `segmenter predict`: the images one after the other
    ray_engine.py    `segmenter predict --engine ray`: a pool of Ray actors
    storage.py       local paths and URIs (pyarrow) to read from and write to
    cli.py           the `segmenter predict` command

Built on `model` (its public API and `model.outputs`); model/ knows nothing of it.
"""
