"""``layerlab data pack SRC OUT``: write a dataset in the packed form (:mod:`layerlab.data.pack`)."""

from __future__ import annotations

import json


def cmd_data_pack(args) -> int:
    from pathlib import Path

    from ..augmentspec import parse_size
    from ..config import DataConfig
    from ..data.inputs import prepare_data
    from ..data.pack import pack
    from ..errors import DataError

    if Path(args.out).exists() and not args.overwrite:  # before minutes of reading the data
        raise DataError(f"{args.out} already exists; give a new directory (or --overwrite)")
    if args.image_size:
        parse_size(args.image_size, "--image-size")
    if args.workers is not None and args.workers < 0:
        raise DataError(f"--workers must be at least 0, got {args.workers}")

    cfg = DataConfig(name=args.src, data_dir=args.data_dir, image_size=args.image_size, channels=args.image_channels)
    cfg.workers = args.workers if args.workers is not None else 0  # an image folder is read a chunk at a time
    from ..config import RunConfig

    RunConfig(data=cfg).validate("data pack")
    ds = prepare_data(cfg)
    if ds.meta.get("images"):
        print(f"images: {ds.meta['images']}")
    index = pack(ds, args.out, overwrite=args.overwrite)
    splits = index["splits"]
    if args.json:
        print(
            json.dumps(
                {"out": str(args.out), **{k: {"n": v["n"], "shards": len(v["shards"])} for k, v in splits.items()}}
            )
        )
        return 0
    print(
        f"packed {ds.name}: {splits['train']['n']} train / {splits['test']['n']} test samples of shape "
        f"{tuple(splits['train']['x_shape'])} ({splits['train']['dtype']}) in {args.out}; "
        f"train on it with --data {args.out}"
    )
    return 0


def register_pack(dsub) -> None:
    p = dsub.add_parser(
        "pack",
        help="write a dataset as memory-mapped .npy shards for fast, bounded-memory training",
        description="Write the dataset SRC (a name or path, as --data takes it) to the directory OUT as uint8 "
        "(or float32) .npy shards with a JSON index; train on it with `layerlab train --data OUT`.",
    )
    p.add_argument("src", metavar="SRC", help="dataset name or path")
    p.add_argument("out", metavar="OUT", help="directory to write (must not exist)")
    p.add_argument("--data-dir", help="directory to look in first for named datasets")
    p.add_argument("--image-size", metavar="H,W", help="image folders: read every image at H,W")
    p.add_argument("--image-channels", type=int, choices=(1, 3), help="image folders: 1 (grey) or 3 (RGB)")
    p.add_argument("--workers", type=int, metavar="N", help="processes decoding an image folder (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_data_pack)
