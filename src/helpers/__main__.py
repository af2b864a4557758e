"""Command line: ``python -m helpers {run,synth,bench,params,validate}``.

Examples::

    python -m helpers run                                   # embedded sample → the repository
    python -m helpers run --source local --path ~/civ40k --out runs/civ40k
    python -m helpers run -f params/full.yaml --out runs/full
    python -m helpers run --source api --path models.jsonl.gz -p window_end 2023-07-31
    python -m helpers synth --rows 4000000 --out benchmarks/data/4M
    python -m helpers params                                # list every run parameter
    python -m helpers validate --real ../shared/data/civitai-api-models-2023/models.jsonl.gz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import parameters, pipeline
from .sources import SALT_ENV, SOURCES


def _load_yaml(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.exists():
        raise parameters.ParameterError(f"parameter file {path} does not exist")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise parameters.ParameterError(f"parameter file {path} must be a mapping of name: value")
    return data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers",
                                     description="CivitAI gendered-harm study pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the notebooks in order with papermill")
    run.add_argument("--source", choices=SOURCES, help="where the snapshot comes from")
    run.add_argument("--path", help="folder or file of the snapshot (local, api)")
    run.add_argument("--revision", help="Hub revision for --source hf (pin a commit sha)")
    run.add_argument("--out", default="", help="run folder (default: the repository itself)")
    run.add_argument("-f", "--parameters-file", action="append", default=[],
                     help="YAML file of parameters (e.g. params/full.yaml); later wins")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="set a parameter (see `params`)")
    run.add_argument("--force", action="store_true", help="re-run stages even if unchanged")
    run.add_argument("--salt-env", default=SALT_ENV,
                     help="environment variable holding the salt for hashing clear usernames")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    synth = sub.add_parser("synth", help="write a synthetic snapshot in the Hub's raw format")
    synth.add_argument("--rows", type=int, required=True, help="image rows")
    synth.add_argument("--models", type=int, default=None, help="models (default rows/100, ≥ 200)")
    synth.add_argument("--seed", type=int, default=parameters.default("seed"))
    synth.add_argument("--out", required=True, help="folder to write images/ and models/ into")

    bench = sub.add_parser("bench", help="scale benchmark on a synthetic snapshot")
    bench.add_argument("--rows", type=int, default=4_000_000)
    bench.add_argument("--baseline", action="store_true", help="also run the naive pandas reference")
    bench.add_argument("--out", default="benchmarks/results", help="results folder")

    sub.add_parser("params", help="list every run parameter with its default")

    validate = sub.add_parser("validate", help="validate the labels on real records and write "
                                               "docs/validation/real_records.{json,md}")
    validate.add_argument("--real", required=True, metavar="PATH",
                          help="raw CivitAI API models file (e.g. ../shared/data/civitai-api-"
                               "models-2023/models.jsonl.gz); never copied into the repository")
    validate.add_argument("--out", default="", help="report folder (default: docs/validation; a "
                          "relative folder is under the repository, as for `run --out`)")
    validate.add_argument("--seed", type=int, default=parameters.PARAMETERS["seed"].default)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    import os

    raw: dict[str, Any] = {}
    for f in args.parameters_file:
        raw.update(_load_yaml(f))
    for name, value in (("source", args.source), ("path", args.path), ("revision", args.revision)):
        if value is not None:
            raw[name] = value
    for name, value in args.parameter:
        raw[name] = value
    if raw.get("path"):
        raw["path"] = str(Path(raw["path"]).expanduser().resolve())
    params = parameters.parse_parameters(raw)
    salt = os.environ.get(args.salt_env, "")
    result = pipeline.run(params, out=Path(args.out) if args.out else None, force=args.force,
                          salt=salt, progress=not args.quiet, salt_env=args.salt_env)
    rows = result.manifest.get("rows", {})
    print(f"run complete: {len(result.executed)} stage(s) executed, {len(result.skipped)} skipped; "
          f"manifest at {pipeline.shown_path(result.paths, result.paths.manifest)}")
    for table, counts in rows.items():
        print(f"  {table}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v is not None))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from . import synth

    models = args.models if args.models is not None else max(200, args.rows // 100)
    params = synth.default_params(n_images=args.rows, n_models=models, seed=args.seed)
    summary = synth.write_snapshot(Path(args.out), params)
    print(summary)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(rows=args.rows, baseline=args.baseline, out=Path(args.out))


def _list_item(item: Any) -> str:
    """One element of a list-valued parameter on one line (a mapping as ``key: value; ...``)."""
    if isinstance(item, dict):
        return "; ".join(f"{k}: {v}" for k, v in item.items())
    return repr(item)


def format_parameter(p: parameters.Parameter) -> str:
    """A parameter as ``python -m helpers params`` lists it: name, type, default and help on one
    line; a list-valued default follows, one element per indented line."""
    if isinstance(p.default, (list, tuple)):
        items = [f"{' ' * 20}- {_list_item(item)}" for item in p.default] or [f"{' ' * 20}(empty)"]
        return "\n".join([f"{p.name:19} {p.type.__name__:5} {p.help}; default:", *items])
    return f"{p.name:19} {p.type.__name__:5} default {p.default!r:14} {p.help}"


def cmd_params(_: argparse.Namespace) -> int:
    for p in parameters.PARAMETERS.values():
        print(format_parameter(p))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from . import label
    from .paths import repo_root, run_paths

    api_file = Path(args.real).expanduser()
    if not api_file.is_file():
        print(f"error: {args.real} is not a file", file=sys.stderr)
        return 2
    report = label.compute_real_records_report(api_file, seed=args.seed)
    written = label.write_real_records_report(report, run_paths(args.out).root if args.out else None)
    root = repo_root().resolve()
    for path in (p.resolve() for p in written):
        print(f"wrote {path.relative_to(root).as_posix() if path.is_relative_to(root) else path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .clean import CleaningError
    from .sources import SourceError

    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "synth": cmd_synth, "bench": cmd_bench, "params": cmd_params,
                "validate": cmd_validate}
    try:
        return handlers[args.command](args)
    except parameters.ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (pipeline.StageError, SourceError, CleaningError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
