"""The ``pybt`` command line: ``pybt demo`` and ``pybt report RUN_DIR``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pybt.errors import PyBTError


def _demo(args: argparse.Namespace) -> int:
    import os

    # The demo's networks are tiny: one math thread is faster than two fighting over the cores
    # (on a busy 2-core machine, many times faster). Set before Keras or torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pybt.demo import run_demo

    run_demo(population=args.population, epochs=args.epochs, seed=args.seed, run_dir=args.run_dir)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pybt.report import write_csv, write_html
    from pybt.store import load_run

    run = load_run(args.run_dir)
    if args.csv:
        path = write_csv(args.out or run.path / "history.csv", run.history)
    else:
        # The configuration as recorded, with the metric and mode the run resolved (None in
        # the recorded configuration means "inferred").
        config = {**run.config, "metric": run.history.metric, "mode": run.history.mode}
        path = write_html(
            args.out or run.path / "report.html",
            run.history,
            config,
            title=f"PyBT run · {run.path.resolve().name}",
            # How the run stands, so that a report taken while it trains does not look final.
            status=run.status,
            created_at=run.created_at,
            updated_at=run.updated_at,
            version=run.version,
            progress=lambda figure: print(f"drawing {figure} ...", file=sys.stderr, flush=True),
        )
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pybt", description="Population Based Training.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="PBT of a Keras MLP on scikit-learn's bundled digits")
    demo.add_argument("--population", type=int, default=8, help="members (default 8)")
    demo.add_argument("--epochs", type=int, default=20, help="epochs per member (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--run-dir", help="keep the run in this folder (then: pybt report RUN_DIR)")
    demo.set_defaults(run=_demo)

    report = commands.add_parser("report", help="an HTML report (or --csv history) of a run folder")
    report.add_argument("run_dir", help="the Trainer's run_dir")
    report.add_argument("--csv", action="store_true", help="write the history as CSV instead")
    report.add_argument("--out", help="output file (default: RUN_DIR/report.html or RUN_DIR/history.csv)")
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except PyBTError as error:
        print(f"pybt: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
