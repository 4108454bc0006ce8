"""The peer of benchmarks/peer_litserve.py: MMSegmentation 1.2.2's `inference_model` behind LitServe.

What a user would write first to serve an mmseg checkpoint with request batching: a LitAPI whose
`setup` builds the model with `mmseg.apis.init_model` from mmseg's own config file, whose
`predict` runs `inference_model` on a batch of images, and whose answer is the class-id mask as
a PNG. It takes the same request as our POST /segment (multipart, the file field `image`; other
fields are ignored) so one client drives both.

    python benchmarks/peer_litserve_server.py --checkpoint CKPT.pth --config CONFIG.py --port 8001

Needs `pip install litserve` (the dev extra) and mmsegmentation 1.2.2 (the dev extra).
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation (Request: the
# parsed form) as a class, not a string.
import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from fastapi import HTTPException, Request, Response

try:
    import litserve as ls
except ImportError:  # the driver checks first and says the same
    raise SystemExit("litserve is not installed: pip install litserve (or pip install -e '.[dev]')") from None

ROOT = Path(__file__).resolve().parent.parent


class MMSegAPI(ls.LitAPI):
    def __init__(self, config: str, checkpoint: str, patch_bias: bool | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config, self.checkpoint, self.patch_bias = config, checkpoint, patch_bias

    def setup(self, device: str) -> None:
        import torch

        # mmcv-lite has no compiled `mmcv.ops`; mmseg imports a few names from it that the Segmenter
        # never calls (testkit/mmseg_reference.py stubs them). With the full mmcv this is a no-op.
        sys.path.insert(0, str(ROOT))
        from testkit.mmseg_reference import import_mmseg

        import_mmseg()
        from mmengine.config import Config
        from mmseg.apis import init_model

        cfg = Config.fromfile(self.config)
        cfg.model.pretrained = None  # no ImageNet download: the checkpoint has every weight
        cfg.model.backbone.init_cfg = None
        if self.patch_bias is not None:  # mmseg 0.x zoo files have the patch bias the 1.x config dropped
            cfg.model.backbone.patch_bias = self.patch_bias
        os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine's plain torch.load
        self.model = init_model(cfg, self.checkpoint, device=device)
        self.torch = torch

    def decode_request(self, request: Request) -> np.ndarray:
        image = request.get("image") if hasattr(request, "get") else None
        if image is None or not hasattr(image, "file"):
            raise HTTPException(422, "send the image as the multipart file field `image`")
        bgr = cv2.imdecode(np.frombuffer(image.file.read(), np.uint8), cv2.IMREAD_COLOR)  # mmseg reads arrays as BGR
        if bgr is None:
            raise HTTPException(422, "the image could not be decoded")
        return bgr

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        from mmseg.apis import inference_model

        with self.torch.inference_mode():
            results = inference_model(self.model, list(images))
        return [r.pred_sem_seg.data[0].to(self.torch.uint8).cpu().numpy() for r in results]

    def encode_response(self, mask: np.ndarray) -> Response:
        ok, png = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        return Response(content=png.tobytes(), media_type="image/png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config", required=True, help="mmseg's config file of the model")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.05, help="seconds to wait to fill a batch")
    parser.add_argument("--patch-bias", choices=["config", "yes", "no"], default="config",
                        help="override the config's backbone.patch_bias (config: as the file says)")
    args = parser.parse_args()
    patch_bias = None if args.patch_bias == "config" else args.patch_bias == "yes"
    api = MMSegAPI(args.config, args.checkpoint, patch_bias, max_batch_size=args.max_batch_size,
                   batch_timeout=args.batch_timeout, api_path="/segment")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=False)
    server.run(host=args.host, port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
