"""A stand-in for trained weights: the decoder fitted to labelled synthetic scenes, on a frozen encoder.

Random weights make every class a near-tie everywhere, which is the worst case for everything that
depends on what a model answers: the merge's pruning (`grid_argmax`) and the reduced-precision
gates. No trained 150-class checkpoint can be downloaded on this machine, so the speed benchmarks
can fit the decoder instead: scenes of rectangles and ellipses, each shape's class (one of 12 out
of 150) given by its colour, labels on the patch grid, cross-entropy, AdamW. The encoder stays
random and frozen, so its features are computed once and the fit takes about a minute on 2 cores.
The result answers in regions, with one or two competing classes at their borders, as a trained
model does — a stand-in for the shape of its logits, not for its accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from model import Segmenter


def labelled_scenes(count: int, size: int, num_classes: int, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N×3×S×S float, about unit range; N×S×S int64 labels): shapes on a background, each shape's
    class one of 12 with its own colour. The 12 classes and colours are the same for every
    `seed`, which draws only the scenes: another seed gives held-out scenes of the same kind."""
    palette = np.random.default_rng(0)
    classes = palette.choice(num_classes, 12, replace=False)
    colours = palette.uniform(-1.5, 1.5, (12, 3))
    rng = np.random.default_rng(seed + 1)  # not the palette's stream, whatever the seed
    yy, xx = np.mgrid[0:size, 0:size]
    images, labels = np.zeros((count, 3, size, size), np.float32), np.zeros((count, size, size), np.int64)
    for n in range(count):
        label = np.full((size, size), 0)
        for _ in range(int(rng.integers(4, 9))):
            kind = int(rng.integers(0, 12))
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(0.08, 0.35, 2) * size
            inside = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1) if rng.uniform() < 0.5 else \
                (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
            label[inside] = kind
        images[n] = colours[label].transpose(2, 0, 1) + rng.normal(0, 0.3, (3, size, size))
        labels[n] = classes[label]
    return torch.from_numpy(images), torch.from_numpy(labels)


def fit_decoder(net: Segmenter, size: int, steps: int = 300, scenes: int = 32, batch: int = 4) -> float:
    """Fit `net.decoder` (in place) to `scenes` labelled scenes on its frozen encoder; returns the
    patch accuracy on 8 held-out scenes."""
    patch = net.config.patch_size
    images, labels = labelled_scenes(scenes + 8, size, net.config.num_classes)
    # Labels on the patch grid: the class at each patch's centre.
    grid_labels = labels[:, patch // 2 :: patch, patch // 2 :: patch]
    with torch.inference_mode():
        features = [net.encoder(images[i : i + batch]) for i in range(0, len(images), batch)]
    tokens = torch.cat([t for t, _ in features]).clone()
    shape = features[0][1]
    net.decoder.train()
    optimizer = torch.optim.AdamW(net.decoder.parameters(), lr=1e-3, weight_decay=0.0)
    rng = torch.Generator().manual_seed(0)
    for _ in tqdm(range(steps), desc="fitting the decoder", unit="step"):
        pick = torch.randint(0, scenes, (batch,), generator=rng)
        loss = F.cross_entropy(net.decoder(tokens[pick], shape), grid_labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.decoder.eval()
    with torch.inference_mode():
        predicted = net.decoder(tokens[scenes:], shape).argmax(dim=1)
    return (predicted == grid_labels[scenes:]).float().mean().item()
