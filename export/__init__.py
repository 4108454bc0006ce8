"""ONNX / TensorRT export with parity checks (issue: export). Uses `model`'s public API only."""
