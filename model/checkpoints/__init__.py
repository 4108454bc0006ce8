"""Every weights format read or written, and the one loader that tells them apart.

folder.py (our safetensors + JSON folder), official.py (the authors' checkpoint.pth +
variant.yml), mmseg.py (MMSegmentation's files), pretrained.py (ImageNet backbones),
state_dict.py (strict loading, safe torch.load), loading.py (`load_local_checkpoint`; callers use
`model.load_segmenter`, which adds exported folders and zoo:NAME: model/resolve.py).
"""

from model.checkpoints.convert import convert_local_checkpoint, file_sha256
from model.checkpoints.errors import CheckpointError
from model.checkpoints.folder import read_checkpoint_description, save_checkpoint
from model.checkpoints.loading import load_local_checkpoint
from model.checkpoints.pretrained import load_pretrained_encoder

__all__ = ["CheckpointError", "convert_local_checkpoint", "file_sha256", "load_pretrained_encoder",
           "load_local_checkpoint", "read_checkpoint_description", "save_checkpoint"]
