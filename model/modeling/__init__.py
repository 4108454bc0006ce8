"""The paper's components as nn.Modules, one per file; nothing here reads files or images.

encoder.py (ViT over patches), linear_decoder.py, mask_transformer.py, segmenter.py (the whole
model: pad, encode, decode, upsample), upsample.py (patch logits -> pixels).
"""

from model.modeling.encoder import ViTEncoder, resize_pos_embed
from model.modeling.linear_decoder import LinearDecoder
from model.modeling.mask_transformer import MaskTransformer
from model.modeling.segmenter import Segmenter
from model.modeling.upsample import upsample_logits

__all__ = ["LinearDecoder", "MaskTransformer", "Segmenter", "ViTEncoder", "resize_pos_embed", "upsample_logits"]
