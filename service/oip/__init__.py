"""The Open Inference Protocol (KServe v2), spoken by KServe, Triton, MLServer and their clients.

Each served model is a v2 model (its metadata: `metadata.py`):

    input  image      BYTES [N]          one encoded image (PNG, JPEG, ...) per element
                      UINT8 [H,W,3]      or pixels, RGB; [N,H,W,3] for a batch of one size
    output class_ids  UINT8/UINT16 [N,H,W] (UINT8 up to 255 classes; [H,W] for pixels [H,W,3])
           confidence FP32 [N,H,W]        each pixel's class probability, only when asked for
    parameters        scale, multiscale, classes: as `POST /segment`'s options

`tensors.py` reads a request's tensors and parameters into images and `SegmentOptions` and
writes the answer's tensors; `infer.py` runs them through the one inference path
(`service.segmentation`); `routes/oip.py` (HTTP, with the binary tensor data extension) and
`grpc_server.py` (gRPC) only translate between the wire and these.
"""
