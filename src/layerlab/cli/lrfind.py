"""``layerlab lr-find``: the learning-rate range test on the data and model that ``train``'s flags
name; a plot, the CSV of its numbers and a suggested rate."""

from __future__ import annotations

import json

from .options import Number


def cmd_lr_find(args) -> int:
    from .. import api, engine, lrfind
    from ..config import RunConfig, check_model_options, config_from_flags
    from ..preflight import check_runtime_options
    from ..presets import resolve
    from ..rundir import build_model_for

    base = RunConfig.from_toml(resolve(args.config)) if args.config else RunConfig()
    cfg, given = config_from_flags(args, base)
    if "model.name" in given:
        from ..models import trust_module

        trust_module(cfg.model.name)
    cfg.validate(args.config or "config")
    check_model_options(cfg.model, args.config or "config", given)
    device = engine.resolve_device(cfg.train.device)
    check_runtime_options(cfg.train, device)
    ds = api.prepare_data(cfg)
    engine.seed_everything(cfg.train.seed)
    assert ds.spec is not None  # every loaded dataset carries its input spec
    model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device)
    result = lrfind.range_test(
        model,
        ds.train,
        cfg.train,
        ds.task,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_iter=args.num_iter,
        device=device,
    )
    files = lrfind.write(result, args.out, f"{cfg.model.name} on {ds.name}: learning-rate range test")
    summary = {
        "suggestion": result["suggestion"],
        "steps": len(result["lrs"]),
        "stopped": result["stopped"],
        "plot": str(files["plot"]),
        "csv": str(files["csv"]),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    rate = f"{result['suggestion']:.3g}" if result["suggestion"] is not None else "none (the loss never fell)"
    print(f"suggested learning rate: {rate} (steepest fall of the loss); plot {files['plot']}, numbers {files['csv']}")
    return 0


def register(sub) -> None:
    from ..config import add_config_flags

    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: a plot and a suggested rate",
        description="Train for --num-iter steps while the learning rate grows exponentially from --start-lr "
        "to --end-lr, plot the loss against the rate and suggest the rate where it falls fastest. The model "
        "and data are those train's flags name; nothing is kept but the plot and its CSV.",
    )
    p.add_argument("--config", metavar="PRESET|FILE", help="a packaged preset or a TOML file, as for train")
    p.add_argument("--out", default=".", metavar="DIR", help="folder for lr_find.png and lr_find.csv (default .)")
    p.add_argument("--start-lr", action=Number, kind=float, gt=0.0, default=1e-7, help="first rate (default 1e-7)")
    p.add_argument("--end-lr", action=Number, kind=float, gt=0.0, default=10.0, help="last rate (default 10)")
    p.add_argument("--num-iter", action=Number, ge=5, default=100, help="steps of the test (default 100)")
    p.add_argument("--json", action="store_true", help="print the suggestion and file names as JSON")
    add_config_flags(p)
    p.set_defaults(func=cmd_lr_find)
