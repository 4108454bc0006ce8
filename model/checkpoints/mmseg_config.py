"""Read the facts we need from the MMSegmentation config text stored inside its checkpoints.

mmseg 1.x Runner files keep the whole config as Python source in `meta.cfg`, mmseg 0.x files in
`meta.config`. The sliding window, the test scale and the normalization are there — the only
reliable record of how the model was evaluated. The text is parsed with `ast` and only literals
(numbers, strings, lists, tuples, dicts, `dict(...)` calls, names assigned earlier) are
evaluated: nothing in the file is executed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item, names) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):  # {**other}
            raise _NotLiteral
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(kw.arg is None for kw in node.keywords):  # dict(**other)
            raise _NotLiteral
        return {kw.arg: _literal(kw.value, names) for kw in node.keywords}
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand, names)
    raise _NotLiteral


def read_config(text: str) -> dict[str, Any]:
    """The top-level assignments of a config whose values are literals; others are skipped."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = _literal(node.value, names)
            except _NotLiteral:
                continue
    return names


@dataclass(frozen=True)
class TestSetup:
    """How an mmseg config evaluates: any field it does not state is None."""

    window: int | None = None  # test_cfg crop_size (square)
    stride: int | None = None  # test_cfg stride
    test_scale: tuple[int, int] | None = None  # keep-ratio Resize of the test pipeline (long, short)
    mean: tuple[float, float, float] | None = None  # on 0..255, as mmseg states them
    std: tuple[float, float, float] | None = None
    has_test_pipeline: bool = False  # the config states its test pipeline (no Resize there: no rescale)
    num_heads: int | None = None  # the ViT's (weights do not show it)
    decoder_num_heads: int | None = None  # the mask head's


def _square(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    return None


def _pipeline_scale(steps: Any) -> tuple[int, int] | None:
    """The keep-ratio scale of a test pipeline: 1.x `Resize(scale=..., keep_ratio=True)`,
    0.x `MultiScaleFlipAug(img_scale=...)`."""
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        scale = step.get("scale") if step.get("type") == "Resize" and step.get("keep_ratio") else None
        if step.get("type") == "MultiScaleFlipAug":
            scale = step.get("img_scale")
        if isinstance(scale, (list, tuple)) and len(scale) == 2 and all(isinstance(v, int) for v in scale):
            return (max(scale), min(scale))
    return None


def test_setup(text: str) -> TestSetup:
    """Window, stride, test scale and normalization stated by an mmseg config's source text."""
    cfg = read_config(text)
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    test_cfg = model.get("test_cfg") or cfg.get("test_cfg") or {}
    window = _square(test_cfg.get("crop_size")) if isinstance(test_cfg, dict) else None
    stride = _square(test_cfg.get("stride")) if isinstance(test_cfg, dict) else None
    pipeline = cfg.get("test_pipeline")
    if pipeline is None and isinstance(cfg.get("data"), dict):  # 0.x: data.test.pipeline
        test = cfg["data"].get("test")
        pipeline = test.get("pipeline") if isinstance(test, dict) else None
    scale = _pipeline_scale(pipeline)
    norm = model.get("data_preprocessor") or cfg.get("img_norm_cfg") or {}
    mean, std = (norm.get("mean"), norm.get("std")) if isinstance(norm, dict) else (None, None)
    triple = lambda v: tuple(float(x) for x in v) if isinstance(v, (list, tuple)) and len(v) == 3 else None  # noqa: E731
    heads = lambda part: part.get("num_heads") if isinstance(part, dict) else None  # noqa: E731
    return TestSetup(window, stride, scale, triple(mean), triple(std), isinstance(pipeline, list),
                     heads(model.get("backbone")), heads(model.get("decode_head")))
