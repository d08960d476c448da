"""The ``domainfm`` command: parse arguments, call the public functions, print.

Every verb builds one :class:`~domainfm.host.Host` from its ``--disable-plugin`` options and
hands it to the public function it calls. Errors a user can fix (unknown names, bad config
values, broken files or data) print one line and exit with status 2, and nothing is written;
any other failure prints one line too (exit 1). ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from domainfm.errors import DomainfmError
from domainfm.host import DISABLE_ENV, Host

EXIT_USAGE = 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--disable-plugin", action="append", default=argparse.SUPPRESS,
                        metavar="NAME",
                        help=f"do not load this plugin (repeatable; also ${DISABLE_ENV}=a,b)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, e.g. --set trainer.max_steps=50")
    parser.add_argument("--resume", help="Lightning checkpoint to resume from")
    parser.add_argument("--devices", help="shorthand for --set trainer.devices=N")
    parser.add_argument("--strategy", help="shorthand for --set trainer.strategy=ddp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domainfm", description="Pretrain and fine-tune domain foundation models.")
    _common(parser)
    parser.set_defaults(disable_plugin=[], debug=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _common(sub.add_parser("plugins", help="list installed plugins and their status"))
    components = sub.add_parser("components", help="list registered components")
    _common(components)
    components.add_argument("--kind", choices=["dataset", "encoder", "objective", "head", "metric",
                                               "predictor"])
    for verb, text in (("pretrain", "pretrain an encoder"), ("finetune", "fine-tune with a head"),
                       ("evaluate", "score a fine-tuned model on a test split"),
                       ("predict", "predict on domain files")):
        p = sub.add_parser(verb, help=text)
        _common(p)
        _run_options(p)
    export = sub.add_parser("export", help="write config.json + model.safetensors + model card")
    _common(export)
    export.add_argument("source", help="run folder or Lightning .ckpt")
    export.add_argument("destination", help="export folder to create")
    export.add_argument("--keep-lora", action="store_true", help="do not merge LoRA adapters")
    export.add_argument("--overwrite", action="store_true")
    demo = sub.add_parser("demo", help="pretrain -> fine-tune -> evaluate every installed plugin")
    _common(demo)
    demo.add_argument("--plugin", action="append", default=[], help="only these plugins")
    demo.add_argument("--output", default="demo_runs")
    rank = sub.add_parser("rank", help="rank candidate encoders for a dataset before fine-tuning")
    _common(rank)
    rank.add_argument("--config", required=True, help="target run config (its data; its encoder "
                      "for the 'random' candidate)")
    rank.add_argument("--candidate", action="append", default=[], metavar="MODEL",
                      help="export or run folder, 'random', or an encoder section with weights "
                           "as YAML (repeatable)")
    rank.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    rank.add_argument("--output", help="folder for ranking.csv/.md/.png (default: output_dir)")
    rank.add_argument("--max-samples", type=int, default=2048)
    soup = sub.add_parser("soup", help="average fine-tuned models into one export (model soup)")
    _common(soup)
    soup.add_argument("sources", nargs="*", help="fine-tuned export or run folders")
    soup.add_argument("--output", required=True, help="export folder to create")
    soup.add_argument("--method", choices=["uniform", "greedy"], default="uniform")
    soup.add_argument("--config", help="greedy: run config naming the validation data and metric")
    soup.add_argument("--overwrite", action="store_true")
    pack = sub.add_parser("pack", help="pack a dataset's train/val samples into tar shards")
    _common(pack)
    pack.add_argument("dataset", nargs="?", help="dataset record (default: the config's data.name)")
    pack.add_argument("destination", help="shard folder to create")
    pack.add_argument("--config", help="take the dataset and its params from this run config")
    pack.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                      help="a dataset parameter (YAML value), e.g. --param root=data/brains")
    pack.add_argument("--split", action="append", choices=["train", "val"], help="default: both")
    pack.add_argument("--samples-per-shard", type=int, default=256)
    pack.add_argument("--overwrite", action="store_true")
    return parser


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume={args.resume}")
    if args.devices:
        overrides.append(f"trainer.devices={args.devices}")
    if args.strategy:
        overrides.append(f"trainer.strategy={args.strategy}")
    return overrides


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def cmd_plugins(args: argparse.Namespace, host: Host) -> int:
    rows = []
    for info in sorted(host.plugins.values(), key=lambda i: i.name):
        detail = info.error if info.error else f"{len(info.components)} components"
        if info.unknown_hooks:
            detail += f"; unknown hooks: {', '.join(info.unknown_hooks)}"
        rows.append([info.name, info.version, info.distribution, info.status, detail])
    print_table(["plugin", "version", "distribution", "status", "components / error"], rows)
    return 0


def cmd_components(args: argparse.Namespace, host: Host) -> int:
    rows = []
    for record in host.components(args.kind):
        extra = f" [presets: {', '.join(record.presets)}]" if record.kind == "encoder" else ""
        rows.append([record.name, record.kind, record.description + extra])
    print_table(["name", "kind", "description"], rows)
    return 0


def cmd_run(args: argparse.Namespace, host: Host) -> int:
    import domainfm

    if args.command == "predict":
        for path in domainfm.predict_from_config(args.config, _overrides(args), host=host):
            print(path)
        return 0
    result = getattr(domainfm, args.command)(args.config, _overrides(args), host=host)
    if result.module is None or result.module.trainer.is_global_zero:
        print(f"run folder: {result.run_dir}")
        for key, value in sorted(result.metrics.items()):
            print(f"  {key}: {value:.6g}")
    return 0


def cmd_export(args: argparse.Namespace, host: Host) -> int:
    import domainfm

    path = domainfm.export(args.source, args.destination, merge_lora=not args.keep_lora,
                           overwrite=args.overwrite, host=host)
    print(f"exported to {path}")
    return 0


def cmd_demo(args: argparse.Namespace, host: Host) -> int:
    from domainfm.showcase import demo

    demo(plugins=args.plugin or None, output=args.output, host=host)
    return 0


def cmd_pack(args: argparse.Namespace, host: Host) -> int:
    import yaml

    import domainfm.api

    params = {}
    if args.config:
        from domainfm.config import load_config

        data = load_config(args.config).data
        args.dataset, params = args.dataset or (data.name if data else None), dict(data.params if data else {})
    if not args.dataset:
        raise DomainfmError("pack needs a dataset name or --config with a data section")
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise DomainfmError(f"--param {item!r}: expected KEY=VALUE")
        params[key] = yaml.safe_load(value)
    path = domainfm.api.pack(args.dataset, args.destination, params, splits=args.split or ("train", "val"),
                             samples_per_shard=args.samples_per_shard, overwrite=args.overwrite,
                             host=host)
    print(f"shards written to {path}")
    return 0


def cmd_rank(args: argparse.Namespace, host: Host) -> int:
    from domainfm.ranking import rank

    result = rank(args.config, args.candidate, output=args.output, max_samples=args.max_samples,
                  overrides=args.overrides, host=host)
    print(result.table())
    print(f"ranked {len(result.rows)} candidates on {result.samples} samples in "
          f"{result.seconds:.1f} s; wrote {', '.join(str(p) for p in result.files)}")
    return 0


def cmd_soup(args: argparse.Namespace, host: Host) -> int:
    from domainfm.soups import soup

    result = soup(args.sources, args.output, method=args.method, config=args.config,
                  overwrite=args.overwrite, host=host)
    used = sum(i["used"] for i in result.ingredients)
    print(f"{result.method} soup of {used} of {len(result.ingredients)} models written to {result.path}")
    return 0


COMMANDS = {"plugins": cmd_plugins, "components": cmd_components, "pretrain": cmd_run,
            "finetune": cmd_run, "evaluate": cmd_run, "predict": cmd_run, "export": cmd_export,
            "demo": cmd_demo, "pack": cmd_pack, "rank": cmd_rank, "soup": cmd_soup}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, Host(disable=args.disable_plugin))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one exit path: one line, or the traceback on --debug
        if args.debug:
            raise
        user = isinstance(exc, DomainfmError)
        what = "error" if user else f"internal error ({type(exc).__name__}; --debug shows where)"
        print(f"domainfm {args.command}: {what}: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE if user else 1


def one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or repr(exc)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
