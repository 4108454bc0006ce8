"""`segmenter attention`, `segmenter variants`, `segmenter convert`: the commands that drive the
model itself (model/ holds no command-line code; `predict` lives with the jobs, in jobs/cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    a = subparsers.add_parser(
        "attention", help="where the model looks: per-head attention maps of one token",
        description="The softmax attention of one encoder or decoder layer, for the token of a pixel (its "
        "patch) or of a class (decoder), as heat maps over the image per head: the paper's figure 6.")
    a.add_argument("image", type=Path)
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--layer", type=int, required=True, help="0-based layer of the encoder or the decoder")
    a.add_argument("--head", type=int, help="one head (default: a grid of every head)")
    token = a.add_mutually_exclusive_group(required=True)
    token.add_argument("--pixel", type=parse_pixel, help="X,Y of a pixel of the image: its patch's attention")
    token.add_argument("--class", dest="class_name", help="a class name or id: its decoder token's attention")
    a.add_argument("--part", choices=["encoder", "decoder"],
                   help="default: encoder for --pixel, decoder for --class (class tokens live there)")
    a.add_argument("--scale", default=None, help="as for predict (default: the test scale)")
    a.add_argument("--out", type=Path, required=True, help="output folder")
    a.set_defaults(func=run_attention)

    v = subparsers.add_parser("variants", help="list the registered model variants")
    v.set_defaults(func=run_variants)

    c = subparsers.add_parser(
        "convert",
        help="convert a checkpoint (e.g. an official checkpoint.pth) to our folder format",
        description="Load any checkpoint load_segmenter reads and save it as safetensors + segmenter.json.",
    )
    c.add_argument("--checkpoint", required=True, help="official checkpoint.pth (variant.yml beside it) or our folder")
    c.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    c.set_defaults(func=run_convert)


def parse_pixel(text: str) -> tuple[int, int]:
    """"X,Y" -> (x, y) pixel coordinates."""
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y pixel coordinates such as 120,64, got {text!r}") from None
    return x, y


def one_class(text: str, metadata) -> int:
    """--class: a class name (any case) or id -> its id."""
    ids = metadata.class_ids(text)
    if len(ids) != 1:
        raise ValueError(f"--class takes one class, got {len(ids)} ({text!r})")
    return ids[0]


def attention_part(args: argparse.Namespace, decoder: str) -> str:
    """The part whose attention to draw (--part, or where the --pixel / --class token lives). The
    impossible combinations are refused here, in flags: the library's messages name its Python
    arguments (part='encoder'), and a linear decoder has no class tokens under any --part."""
    part = args.part or ("decoder" if args.class_name is not None else "encoder")
    if args.class_name is not None and part == "encoder":
        raise ValueError("--class: class tokens live in the decoder; drop --part encoder (or use --pixel X,Y for the "
                         "encoder's attention)")
    if part == "decoder" and decoder == "linear":
        raise ValueError("this model has a linear decoder, which has no attention layers and no class tokens: "
                         + ("--class needs a mask-transformer model; use --pixel X,Y to see the encoder's attention"
                            if args.class_name is not None else "use --part encoder"))
    return part


def run_attention(args: argparse.Namespace) -> int:
    from PIL import Image

    from model import Predictor, load_segmenter, parse_scale, read_image
    from model.inference import attention_picture, image_attention

    try:  # before loading: a typo costs nothing
        args.scale = parse_scale(args.scale)
    except ValueError as exc:
        raise ValueError(f"--scale: {exc}") from None
    net = load_segmenter(args.checkpoint)
    predictor = Predictor(net)
    part = attention_part(args, net.config.decoder)
    class_id = one_class(args.class_name, net.metadata) if args.class_name is not None else None
    result = image_attention(predictor, read_image(args.image), args.layer, part, args.pixel, class_id, args.scale)
    target = f"class-{class_id}" if class_id is not None else f"pixel-{args.pixel[0]}-{args.pixel[1]}"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.image.stem}_{part}{args.layer}_{target}.png"
    Image.fromarray(attention_picture(result, args.head)).save(path)
    print(f"wrote {path} ({result.maps.num_heads} heads, {result.image.shape[1]}×{result.image.shape[0]} as the "
          "model saw it)")
    return 0


def run_variants(args: argparse.Namespace) -> int:
    from model import get_variant, list_variants

    for name in list_variants():
        v = get_variant(name)
        c = v.config
        print(
            f"{name:16s} embed_dim={c.embed_dim:<5d} depth={c.depth:<3d} heads={c.num_heads:<3d} "
            f"patch={c.patch_size:<3d} decoder={c.decoder:17s} crop={c.image_size} "
            f"pretrained={v.pretrained_tag or '-'}"
        )
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from model import convert_checkpoint

    net = convert_checkpoint(args.checkpoint, args.out)
    meta = net.metadata
    print(f"wrote {args.out}: {net.config.embed_dim}-dim, depth {net.config.depth}, patch {net.config.patch_size}, "
          f"{net.config.decoder} decoder, {meta.num_classes} classes ({meta.dataset}), "
          f"window {meta.window_size}/{meta.window_stride}, test scale {meta.test_scale or 'none'}, "
          f"{meta.protocol} protocol")
    return 0
