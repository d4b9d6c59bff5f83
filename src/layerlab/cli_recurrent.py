"""Command-line sub-commands for recurrent models: ``layerlab generate``.

(``train``, ``evaluate`` and ``predict`` are shared with the CNNs, in :mod:`layerlab.cli`.)
"""
from __future__ import annotations

import json


def cmd_generate(args) -> int:
    from .sequence_predict import generate

    r = generate(args.run_dir, args.prompt, args.length, temperature=args.temperature, seed=args.seed,
                 which=args.weights, device=args.device)
    if args.json:
        print(json.dumps(r))
    else:
        print(r["text"])
    return 0


def register(subparsers) -> None:
    g = subparsers.add_parser("generate", help="sample text from a character-level language model run",
                              description="Sample characters from a recurrent model trained on a text file "
                                          "(layerlab train --model lstm --data book.txt), after a prompt.")
    g.add_argument("run_dir", metavar="RUN_DIR")
    g.add_argument("--prompt", default="", help="text to start from (its characters must be in the training text)")
    g.add_argument("--length", type=int, default=200, help="characters to sample (default 200)")
    g.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature: <1 conservative, >1 varied, 0 always the likeliest (default 1)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    g.add_argument("--weights", choices=["best", "last"], default="best")
    g.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    g.add_argument("--json", action="store_true", help="print one JSON object (prompt, sample, text, ...)")
    g.set_defaults(func=cmd_generate)
