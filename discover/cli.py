"""The ``discover`` command line. Each command is a thin layer over a library function."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console  # noqa: E402

from evaluator.tier_names import DEFAULT_TIER, TIER_NAMES  # noqa: E402 - torch-free

console = Console()
err = Console(stderr=True)


def _tier_arg(parser: argparse.ArgumentParser, default: str | None = DEFAULT_TIER) -> None:
    parser.add_argument("--tier", choices=TIER_NAMES, default=default,
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
    from sandbox.ray_executor import RayUnavailable

    replay = {} if args.replay_llm is None else {"llm_cache": "replay", "llm_cache_from": args.replay_llm or None}
    try:
        config = configuration.load(args.config, workspace=args.workspace, tier=args.tier, budget=args.budget,
                                    seed=args.seed, workers=args.workers, model=args.model, executor=args.executor,
                                    ray_address=args.address,
                                    api_base=args.api_base, max_cost=args.max_cost, max_tokens=args.max_tokens,
                                    fewshot=args.fewshot, judge_model=args.judge_model, **replay)
    except configuration.ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    view = LiveView(config.budget)
    try:
        with Live(view, console=console, refresh_per_second=4, transient=False):
            summary = run(config, resume=args.resume, listener=view.on_event)
        if not console.is_terminal:
            console.line()  # into a file or a pipe the last frame ends without a newline
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: finished evaluations are saved; continue with --resume[/yellow]")
        return 130
    except RayUnavailable as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"run {summary.run_id} {summary.status}: {summary.spent}/{summary.budget} evaluations, "
                  f"{summary.duplicates} duplicate proposal(s) skipped")
    if summary.reason:
        err.print(f"[yellow]stopped: {summary.reason}[/yellow]")
    if summary.llm is not None:
        from agents.llm import Usage

        console.print(f"LLM: {Usage(**summary.llm).describe()}")
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


def _inspect(args: argparse.Namespace, fetch, render) -> int:
    """show, lineage, diff and log: read the workspace, then print the dict as JSON or rendered with rich."""
    from discover.inspect import InspectError, open_db
    from memory import SchemaError

    try:
        with open_db(args.workspace) as db:
            info = fetch(db)
    except (InspectError, SchemaError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        console.print(render(info))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from discover import inspect

    return _inspect(args, lambda db: inspect.show(db, args.id), lambda info: inspect.render_show(info, args.code))


def cmd_lineage(args: argparse.Namespace) -> int:
    from discover import inspect

    return _inspect(args, lambda db: inspect.lineage(db, args.id, args.depth), inspect.render_lineage)


def cmd_diff(args: argparse.Namespace) -> int:
    from discover import inspect

    return _inspect(args, lambda db: inspect.diff(db, args.a, args.b), inspect.render_diff)


def cmd_log(args: argparse.Namespace) -> int:
    from rich.console import Group

    from discover import inspect

    if not args.follow:
        return _inspect(args, lambda db: inspect.run_log(db, args.run),
                        lambda info: Group(*(inspect.event_text(e) for e in info["events"])))
    try:
        with inspect.open_db(args.workspace) as db:
            for event in inspect.follow(db, args.run):
                if args.json:
                    print(json.dumps(event), flush=True)
                else:
                    console.print(inspect.event_text(event))
    except inspect.InspectError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from discover.inspect import InspectError
    from memory import SchemaError

    try:
        from discover.ui import DiscoverApp

        app = DiscoverApp(args.workspace)
    except (InspectError, SchemaError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    app.run()
    return 0


def _open_store(workspace: str, readonly: bool = False):
    """(database, archive) of an existing workspace, or None after saying why."""
    from discover.workspace import Workspace
    from memory import DesignArchive, ExperienceDB

    ws = Workspace(Path(workspace))
    if not ws.db_path.exists():
        err.print(f"[red]error:[/red] no experience database in {workspace}; run `discover run` or `discover seed`")
        return None
    return ExperienceDB(ws.db_path, readonly=readonly), DesignArchive(ws.archive_path)


def cmd_replay(args: argparse.Namespace) -> int:
    import sandbox
    from discover.provenance import replay_report
    from discover.replay import ReplayError, replay
    from memory import RecordNotFound

    if (store := _open_store(args.workspace)) is None:
        return 2
    try:
        with console.status(f"replaying design {args.id} …"):
            outcome = replay(*store, args.id, args.evaluation)
    except (ReplayError, RecordNotFound) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    finally:
        sandbox.kill_all()
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        console.print(replay_report(outcome))
    return 0 if outcome.reproduced else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    import sandbox
    from discover.provenance import verify_report
    from discover.verify import VerifyError, verify
    from memory import RecordNotFound

    if (store := _open_store(args.workspace)) is None:
        return 2
    executor = sandbox.make_executor("local", workers=args.workers or None)
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"verifying at tier {args.tier}", total=None)
            report = verify(*store, executor, args.tier, top=args.top, seeds=args.seeds, references=args.references,
                            design_ids=args.designs, confidence=args.confidence,
                            on_planned=lambda n: progress.update(task, total=n),
                            on_done=lambda name, seed, status: progress.advance(task))
    except (VerifyError, RecordNotFound) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    finally:
        sandbox.kill_all()
        executor.shutdown()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(verify_report(report))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from discover.export import ExportError, export_design
    from memory import RecordNotFound

    if (store := _open_store(args.workspace, readonly=True)) is None:
        return 2
    try:
        exported = export_design(store[0], args.id, args.output)
    except (ExportError, RecordNotFound, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    needs = ", ".join(("torch", *exported.requires))
    console.print(f"wrote {args.output}: design {args.id} with {len(exported.inlined)} reference module(s) inlined; "
                  f"needs {needs}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import sandbox
    from discover.importer import ImportDesignError, import_design
    from discover.provenance import import_report
    from discover.workspace import Workspace
    from memory import DesignArchive, ExperienceDB

    ws = Workspace.open(args.workspace)
    try:
        with console.status(f"checking and evaluating {args.file} at tier {args.tier} …"):
            outcome = import_design(ExperienceDB(ws.db_path), DesignArchive(ws.archive_path), args.file, args.tier,
                                    args.seed)
    except ImportDesignError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    finally:
        sandbox.kill_all()
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        console.print(import_report(outcome, args.file, args.tier))
    return 0 if outcome.status in ("ok", "duplicate") else 1


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
    run.add_argument("--model", default=None,
                     help="agent backend: offline (the default, no LLM) or a litellm model string for every role, "
                          "e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/qwen2.5-coder")
    run.add_argument("--api-base", default=None, metavar="URL",
                     help="an OpenAI-compatible endpoint for the model (vLLM, llama.cpp server, a proxy)")
    run.add_argument("--max-cost", type=float, default=None, metavar="DOLLARS",
                     help="stop the run once LLM calls cost this much (default: no cap)")
    run.add_argument("--max-tokens", type=int, default=None, help="stop the run once LLM calls used this many tokens")
    run.add_argument("--fewshot", type=int, default=None,
                     help="designs shown to the researcher as examples (default: 3)")
    run.add_argument("--judge-model", default=None, help="add the judge role with this model (default: no judge)")
    run.add_argument("--replay-llm", nargs="?", const="", default=None, metavar="DB",
                     help="serve LLM replies only from the recorded cache (of this workspace, or of the experience "
                          "database DB): re-do a run without a model")
    run.add_argument("--executor", default=None,
                     help="where evaluations run: local processes (the default) or Ray tasks")
    run.add_argument("--address", default=None, metavar="ADDR",
                     help="with --executor ray: a running Ray cluster (auto, HOST:PORT or ray://HOST:10001); "
                          "default: start a local one with --workers CPUs")
    run.add_argument("--config", default=None, metavar="FILE", help="a TOML configuration file")
    run.add_argument("--resume", action="store_true", help="continue the latest run in the workspace")
    run.set_defaults(func=cmd_run)

    top = sub.add_parser("top", help="print the leaderboard",
                         description="With --json: a list of rows, best first, each with rank, id, name, origin, "
                                     "score, mqar_acc, parity_acc, lm_bpb, state_size, tokens_per_s, tier, seed and "
                                     "verified (the latest verification's verdict, null when not verified).")
    _tier_arg(top)
    _workspace_arg(top)
    top.add_argument("-k", type=int, default=20, help="rows (default: 20)")
    top.add_argument("--json", action="store_true", help="print the rows as JSON")
    top.set_defaults(func=cmd_top)

    ui = sub.add_parser("ui", help="the terminal UI: runs, live view, leaderboard, designs, lineage, plot",
                        description="Browse a workspace in the terminal; it only reads, so it can watch a running "
                                    "`discover run`. Press ? for the keys.")
    _workspace_arg(ui)
    ui.set_defaults(func=cmd_ui)

    show = sub.add_parser("show", help="everything recorded about one design",
                          description="With --json: an object with id, name, origin, motivation, parents, children, "
                                      "run_id, created_at, archive_commit, spec, code, best (its best evaluation), "
                                      "evaluations (each with tier, seed, status, reason, score, metrics, log), "
                                      "comparison (tier, metrics and score beside parent and baselines), analyses, "
                                      "llm_calls and verification (null when not verified).")
    show.add_argument("id", type=int, help="design id")
    _workspace_arg(show)
    show.add_argument("--code", action="store_true", help="also print the code")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    show.set_defaults(func=cmd_show)

    lineage = sub.add_parser("lineage", help="a design's ancestors and descendants as a tree",
                             description="With --json: an object with design, ancestors (along first parents, "
                                         "nearest first), descendants (nested, each with children) and truncated; "
                                         "every node has id, name, origin, parents, tier, tier_version, status and "
                                         "score of its best evaluation.")
    lineage.add_argument("id", type=int, help="design id")
    _workspace_arg(lineage)
    lineage.add_argument("--depth", type=int, default=3, help="levels of descendants (default: 3)")
    lineage.add_argument("--json", action="store_true", help="print the tree as JSON")
    lineage.set_defaults(func=cmd_lineage)

    diff = sub.add_parser("diff", help="the code change from design A to design B, with their metrics",
                          description="With --json: an object with a and b (nodes as in `lineage`), diff (unified "
                                      "diff text), tier (null when the two have no results at a common tier) and "
                                      "metrics (rows of metric, a, b, delta).")
    diff.add_argument("a", type=int, help="design id to diff from")
    diff.add_argument("b", type=int, help="design id to diff to")
    _workspace_arg(diff)
    diff.add_argument("--json", action="store_true", help="print the diff and metrics as JSON")
    diff.set_defaults(func=cmd_diff)

    log = sub.add_parser("log", help="a run's events (the latest run by default)",
                         description="With --json: an object with run (id, status, tier, budget, started_at, "
                                     "ended_at, spent) and events (each with id, ts, kind, data and text, the line "
                                     "the live display shows). With --follow --json: one event object per line.")
    log.add_argument("run", type=int, nargs="?", default=None, help="run id (default: the latest)")
    _workspace_arg(log)
    log.add_argument("--follow", "-f", action="store_true", help="keep printing new events until the run ends")
    log.add_argument("--json", action="store_true", help="print JSON")
    log.set_defaults(func=cmd_log)

    replay = sub.add_parser("replay", help="re-evaluate a recorded evaluation from the archived code and compare",
                            description="Exit 0 when every compared metric reproduces within the tier's tolerance "
                                        "(see discover/replay.py), 1 when something differs, 2 on an error.")
    replay.add_argument("id", type=int, help="design id")
    replay.add_argument("--evaluation", type=int, default=None, metavar="EID",
                        help="the evaluation to replay (default: the design's best, the one `top` shows)")
    _workspace_arg(replay)
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.set_defaults(func=cmd_replay)

    verify = sub.add_parser("verify", help="re-evaluate the best designs with several seeds beside references")
    _tier_arg(verify)
    _workspace_arg(verify)
    verify.add_argument("--top", type=int, default=3, metavar="K", help="designs to verify (default: 3)")
    verify.add_argument("--seeds", type=int, default=3, metavar="S", help="seeds 0..S-1 per design (default: 3)")
    verify.add_argument("--references", nargs="+", metavar="NAME",
                        help="baselines to compare with (default: the best at the tier and linear_attention)")
    verify.add_argument("--designs", nargs="+", type=int, metavar="ID", help="verify these designs instead of the top")
    verify.add_argument("--confidence", type=float, default=0.95, help="confidence of the intervals (default: 0.95)")
    verify.add_argument("--workers", type=int, default=0, help="parallel evaluations (default: one per CPU core)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)

    export = sub.add_parser("export", help="write a design as a standalone module that needs only torch")
    export.add_argument("id", type=int, help="design id")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    _workspace_arg(export)
    export.set_defaults(func=cmd_export)

    import_ = sub.add_parser("import", help="check, deduplicate, record and evaluate your own design file")
    import_.add_argument("file", help="a design file (see docs/design-contract.md)")
    _tier_arg(import_)
    _workspace_arg(import_)
    import_.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    import_.add_argument("--json", action="store_true", help="print the outcome as JSON")
    import_.set_defaults(func=cmd_import)
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
