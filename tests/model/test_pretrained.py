"""ImageNet initialisation from local files, with position embeddings resized to the crop grid.

The source is a timm ViT trained "at 32×32" (2×2 patches); our encoder's crop is 64×64 (4×4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from model import CheckpointError, load_pretrained_encoder
from tests.conftest import tiny_segmenter


@pytest.fixture
def source_vit() -> VisionTransformer:
    torch.manual_seed(11)
    vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=1, num_classes=10)
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return vit


def expected_pos_embed(vit: VisionTransformer, grid: int) -> torch.Tensor:
    """The bilinear (align_corners=False) resize of the grid part, written out independently."""
    pos = vit.pos_embed.detach()
    cls, patches = pos[:, :1], pos[:, 1:]
    patches = patches.reshape(1, 2, 2, 64).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bilinear", align_corners=False)
    return torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(1, grid * grid, 64)], dim=1)


def assert_initialised_from(net, vit):
    enc, src = net.encoder.state_dict(), vit.state_dict()
    for key in ("patch_embed.proj.weight", "cls_token", "blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias",
                "norm.weight"):
        assert torch.equal(enc[key], src[key]), key
    torch.testing.assert_close(enc["pos_embed"], expected_pos_embed(vit, 4))


def write_npz(vit: VisionTransformer, path) -> None:
    """Save a timm ViT in Google's JAX .npz layout (what timm's loader reads)."""
    s = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    d, heads = 64, 1
    w = {"embedding/kernel": s["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
         "embedding/bias": s["patch_embed.proj.bias"], "cls": s["cls_token"],
         "Transformer/posembed_input/pos_embedding": s["pos_embed"],
         "Transformer/encoder_norm/scale": s["norm.weight"], "Transformer/encoder_norm/bias": s["norm.bias"],
         "head/kernel": s["head.weight"].T, "head/bias": s["head.bias"]}
    for i in range(2):
        b, p = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        w[p + "LayerNorm_0/scale"], w[p + "LayerNorm_0/bias"] = s[b + "norm1.weight"], s[b + "norm1.bias"]
        w[p + "LayerNorm_2/scale"], w[p + "LayerNorm_2/bias"] = s[b + "norm2.weight"], s[b + "norm2.bias"]
        qkv_w, qkv_b = s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            w[p + f"MultiHeadDotProductAttention_1/{name}/kernel"] = qkv_w[j * d:(j + 1) * d].T.reshape(d, heads, -1)
            w[p + f"MultiHeadDotProductAttention_1/{name}/bias"] = qkv_b[j * d:(j + 1) * d].reshape(heads, -1)
        w[p + "MultiHeadDotProductAttention_1/out/kernel"] = (
            s[b + "attn.proj.weight"].reshape(d, heads, -1).transpose(1, 2, 0))
        w[p + "MultiHeadDotProductAttention_1/out/bias"] = s[b + "attn.proj.bias"]
        for r in range(2):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = s[b + f"mlp.fc{r + 1}.weight"].T
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = s[b + f"mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


def test_from_safetensors_with_another_grid(tmp_path, source_vit):
    save_file(source_vit.state_dict(), tmp_path / "vit.safetensors")
    net = tiny_segmenter()
    load_pretrained_encoder(net, tmp_path / "vit.safetensors")
    assert_initialised_from(net, source_vit)


def test_from_wrapped_pth(tmp_path, source_vit):
    torch.save({"model": source_vit.state_dict()}, tmp_path / "deit_style.pth")
    net = tiny_segmenter()
    load_pretrained_encoder(net, tmp_path / "deit_style.pth")
    assert_initialised_from(net, source_vit)


def test_from_google_npz(tmp_path, source_vit):
    write_npz(source_vit, tmp_path / "vit.npz")
    net = tiny_segmenter()
    load_pretrained_encoder(net, tmp_path / "vit.npz")
    assert_initialised_from(net, source_vit)


def test_decoder_is_untouched(tmp_path, source_vit):
    save_file(source_vit.state_dict(), tmp_path / "vit.safetensors")
    net = tiny_segmenter()
    before = {k: v.clone() for k, v in net.decoder.state_dict().items()}
    load_pretrained_encoder(net, tmp_path / "vit.safetensors")
    assert all(torch.equal(before[k], v) for k, v in net.decoder.state_dict().items())


def test_wrong_width_is_reported(tmp_path):
    other = VisionTransformer(img_size=32, patch_size=16, embed_dim=128, depth=2, num_heads=2)
    save_file(other.state_dict(), tmp_path / "wide.safetensors")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_pretrained_encoder(tiny_segmenter(), tmp_path / "wide.safetensors")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="no pretrained weights file"):
        load_pretrained_encoder(tiny_segmenter(), tmp_path / "missing.npz")


def test_timm_tag_goes_through_timm_and_is_resized(monkeypatch, source_vit):
    # The hub download itself needs a network; the test stands in for timm.create_model so the
    # rest of the path (classifier keys dropped, pos-embed resized, strict load) is exercised.
    import timm

    calls = []

    def fake_create_model(name, pretrained, num_classes):
        calls.append((name, pretrained, num_classes))
        return source_vit

    monkeypatch.setattr(timm, "create_model", fake_create_model)
    net = tiny_segmenter()
    load_pretrained_encoder(net, "vit_tiny_patch16_384.augreg_in21k_ft_in1k")
    assert calls == [("vit_tiny_patch16_384.augreg_in21k_ft_in1k", True, 0)]
    assert_initialised_from(net, source_vit)


def test_unreachable_hub_says_how_to_work_offline(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(CheckpointError, match="offline host pass a local"):
        load_pretrained_encoder(tiny_segmenter(), "vit_tiny_patch16_384.augreg_in21k_ft_in1k")
