"""The ``discover`` command line. Each command is a thin layer over a library function."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console  # noqa: E402

from evaluator import DEFAULT_TIER, TIERS  # noqa: E402

console = Console()
err = Console(stderr=True)


def _tier_arg(parser: argparse.ArgumentParser, default: str | None = DEFAULT_TIER) -> None:
    parser.add_argument("--tier", choices=list(TIERS), default=default,
                        help=f"evaluation tier (default: {default or 'the configured one'})")


def _workspace_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default="runs", metavar="DIR", help="workspace folder (default: ./runs)")


def cmd_check(args: argparse.Namespace) -> int:
    from discover.report import check_report
    from evaluator import evaluate_file

    path = Path(args.file)
    if not path.is_file():
        err.print(f"[red]error:[/red] no such file: {path}")
        return 2
    if args.json:
        result = evaluate_file(path, args.tier, args.seed)
        print(json.dumps(result.to_dict(), indent=2))
    else:
        with console.status(f"evaluating {path.name} at tier {args.tier} …"):
            result = evaluate_file(path, args.tier, args.seed)
        check_report(console, str(path), result)
    return 0 if result.ok else 1


def cmd_seed(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    import sandbox
    from agents.offline.space import BASELINE_POINTS
    from discover.seed import ensure_references
    from discover.workspace import Workspace
    from memory import DesignArchive, ExperienceDB
    from memory.baselines import BASELINES

    names = args.only or list(BASELINES)
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        err.print(f"[red]error:[/red] unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
        return 2
    ws = Workspace.open(args.workspace)
    db, archive = ExperienceDB(ws.db_path), DesignArchive(ws.archive_path)
    executor = sandbox.make_executor("local", workers=args.workers or None)
    rows = []
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"seeding {len(names)} baseline(s) at tier {args.tier}",
                                     total=len(names) * args.seeds)

            def done(outcome) -> None:
                progress.advance(task)
                rows.append({"name": outcome.name, "seed": outcome.seed, "status": outcome.result.status,
                             "reason": outcome.result.reason, "metrics": outcome.result.metrics,
                             "duration_s": outcome.result.duration_s})

            ensure_references(db, archive, executor, args.tier, range(args.seeds), names, specs=BASELINE_POINTS,
                              on_done=done)
    finally:
        sandbox.kill_all()
        executor.shutdown()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if all(r["status"] == "ok" for r in rows) else 1
    from discover.report import seed_table

    console.print(seed_table(rows, args.tier) if rows else "every requested reference is already evaluated")
    print_top(args.workspace, args.tier, 20, as_json=False)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_run(args: argparse.Namespace) -> int:
    from rich.live import Live

    from discover import config as configuration
    from discover.live import LiveView
    from discover.loop import run

    try:
        config = configuration.load(args.config, workspace=args.workspace, tier=args.tier, budget=args.budget,
                                    seed=args.seed, workers=args.workers, model=args.model, executor=args.executor)
    except configuration.ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    view = LiveView(config.budget)
    try:
        with Live(view, console=console, refresh_per_second=4, transient=False):
            summary = run(config, resume=args.resume, listener=view.on_event)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: finished evaluations are saved; continue with --resume[/yellow]")
        return 130
    console.print(f"run {summary.run_id} {summary.status}: {summary.spent}/{summary.budget} evaluations, "
                  f"{summary.duplicates} duplicate proposal(s) skipped")
    return print_top(config.workspace, config.tier, 10, as_json=False)


def print_top(workspace: str, tier: str, k: int, as_json: bool) -> int:
    from discover.report import leaderboard
    from discover.workspace import Workspace
    from memory import ExperienceDB

    ws = Workspace(Path(workspace))
    if not ws.db_path.exists():
        err.print(f"[red]error:[/red] no experience database in {workspace}; run `discover run` or `discover seed`")
        return 2
    rows = leaderboard(ExperienceDB(ws.db_path, readonly=True), tier, k)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        from discover.report import leaderboard_table

        console.print(leaderboard_table(rows, tier))
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    return print_top(args.workspace, args.tier, args.k, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discover", description=__doc__.splitlines()[0] + " "
                                     "Agents propose sequence-mixer designs; a sandbox trains, profiles and checks "
                                     "them; an experience database shapes the next proposal.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="evaluate one design file and print a report")
    check.add_argument("file", help="a design file (see docs/design-contract.md)")
    _tier_arg(check)
    check.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=cmd_check)

    seed = sub.add_parser("seed", help="evaluate the baseline designs (the references scores are measured against)")
    _tier_arg(seed)
    _workspace_arg(seed)
    seed.add_argument("--seeds", type=int, default=1, help="evaluation seeds per baseline (default: 1)")
    seed.add_argument("--workers", type=int, default=0, help="parallel evaluations (default: one per CPU core)")
    seed.add_argument("--only", nargs="+", metavar="NAME", help="seed only these baselines")
    seed.add_argument("--json", action="store_true", help="print the results as JSON")
    seed.set_defaults(func=cmd_seed)

    run = sub.add_parser("run", help="the discovery loop: propose, code, dedup, evaluate, analyse, record")
    run.add_argument("--budget", type=int, default=None, help="evaluations to spend (default: 8)")
    _tier_arg(run, default=None)
    _workspace_arg(run)
    run.set_defaults(workspace=None)
    run.add_argument("--workers", type=int, default=None, help="parallel evaluations (default: one per CPU core)")
    run.add_argument("--seed", type=int, default=None, help="evaluation and agent seed (default: 0)")
    run.add_argument("--model", default=None, help="agent backend (default: offline, no LLM)")
    run.add_argument("--executor", default=None, help="where evaluations run (default: local)")
    run.add_argument("--config", default=None, metavar="FILE", help="a TOML configuration file")
    run.add_argument("--resume", action="store_true", help="continue the latest run in the workspace")
    run.set_defaults(func=cmd_run)

    top = sub.add_parser("top", help="print the leaderboard")
    _tier_arg(top)
    _workspace_arg(top)
    top.add_argument("-k", type=int, default=20, help="rows (default: 20)")
    top.add_argument("--json", action="store_true", help="print the rows as JSON")
    top.set_defaults(func=cmd_top)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
