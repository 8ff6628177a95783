"""The ``discover`` command line. Each command is a thin layer over a library function.

A command parses its arguments, opens what it needs with ``opened`` (the workspace's store, an
executor when it evaluates), calls one library function and presents the result with ``present``:
JSON, or a rich report. A failure the library names ends the command with ``error: <message>`` on
stderr and exit code 2; whatever the command opened is closed however it ends. Into a file or a pipe
nothing is cut to the terminal's width, and a reader that closes the pipe (``| head``) ends the
command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console, RenderableType  # noqa: E402

from discover.workspace import Session, WorkspaceError  # noqa: E402 - torch-free
from evaluator.metrics import LEADERBOARD  # noqa: E402 - torch-free
from evaluator.tier_names import DEFAULT_TIER, TIER_NAMES  # noqa: E402 - torch-free

console = Console()
err = Console(stderr=True)


class CommandError(Exception):
    """A request a command cannot meet: ``main`` prints ``error: <message>`` on stderr and exits with 2."""


@contextmanager
def opened(workspace: str | Path | None = None, *, store: str | None = None, workers: int | None = None,
           status: str | None = None, errors: tuple[type[Exception], ...] = ()) -> Iterator[Session]:
    """The frame of a command: open what it needs, turn the failures the library names into a CommandError,
    and close everything however the command ends.

    store: None (no workspace), or how to open the workspace's store (``Session.open_store``). workers: the
    width of ``session.executor``, for a command that evaluates many designs (one evaluation runs in
    a sandbox of its own). status: a spinner with this text while the command works. errors: the
    exceptions that mean the request cannot be met.
    """
    session = Session(workers, warn=lambda message: err.print(message, style="yellow", markup=False))
    try:
        if store is not None:
            session.open_store(workspace, store)
        with console.status(status) if status else nullcontext():
            yield session
    except (WorkspaceError, *errors) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        session.close()


def present(as_json: bool, data, report: Callable[[], RenderableType]) -> None:
    """Print ``data`` as JSON, or else the rich ``report()``."""
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        console.print(report())


WORKSPACE_TIER = f"the tier of the workspace's latest run, else of its latest evaluation, else {DEFAULT_TIER}"


def _tier_arg(parser: argparse.ArgumentParser, default: str | None = DEFAULT_TIER, help: str | None = None) -> None:
    parser.add_argument("--tier", choices=TIER_NAMES, default=default,
                        help=f"evaluation tier (default: {help or default or 'the configured one'})")


def workspace_tier(db, tier: str | None) -> str:
    """The tier asked for, else the one the workspace works at (``WORKSPACE_TIER``)."""
    return tier or db.views.current_tier() or DEFAULT_TIER


def _workspace_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default="runs", metavar="DIR", help="workspace folder (default: ./runs)")


def cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():  # before the evaluator (and torch) loads: a typo costs no seconds
        raise CommandError(f"no such file: {path}")
    from discover.report import check_report
    from evaluator import evaluate_file

    with opened(status=None if args.json else f"evaluating {path.name} at tier {args.tier} …"):
        result = evaluate_file(path, args.tier, args.seed)
    present(args.json, result.to_dict(), lambda: check_report(str(path), result))
    return 0 if result.ok else 1


def cmd_seed(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from discover.report import seed_table
    from memory.baselines import BASELINES
    from memory.references import ensure_references

    names = args.only or list(BASELINES)
    if unknown := sorted(set(names) - set(BASELINES)):
        raise CommandError(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    rows = []
    with opened(args.workspace, store="create", workers=args.workers) as session, \
            Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"seeding {len(names)} baseline(s) at tier {args.tier}", total=len(names) * args.seeds)

        def done(outcome) -> None:
            progress.advance(task)
            rows.append({"name": outcome.name, "seed": outcome.seed, "status": outcome.result.status,
                         "reason": outcome.result.reason, "metrics": outcome.result.metrics,
                         "duration_s": outcome.result.duration_s})

        ensure_references(session.recorder, session.executor, args.tier, range(args.seeds), names, on_done=done)
    nothing_to_do = "every requested reference is already evaluated"
    present(args.json, rows, lambda: seed_table(rows, args.tier) if rows else nothing_to_do)
    if not args.json:
        show_top(args.workspace, args.tier, 20, as_json=False)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_run(args: argparse.Namespace) -> int:
    from rich.live import Live

    from discover import config as configuration
    from discover.live import LiveView, PlainLines
    from discover.loop import run
    from sandbox.ray_executor import RayUnavailable

    if not (args.verify == 0 or 2 <= args.verify < 1 << 16):
        raise CommandError(f"--verify needs at least 2 seeds to measure a spread (0 turns it off); got {args.verify}")
    replay = {} if args.replay_llm is None else {"llm_cache": "replay", "llm_cache_from": args.replay_llm or None}
    with opened(errors=(configuration.ConfigError, RayUnavailable)):
        config = configuration.load(args.config, workspace=args.workspace, tier=args.tier, budget=args.budget,
                                    seed=args.seed, workers=args.workers, model=args.model, executor=args.executor,
                                    ray_address=args.address,
                                    api_base=args.api_base, max_cost=args.max_cost, max_tokens=args.max_tokens,
                                    fewshot=args.fewshot, judge_model=args.judge_model, **replay)
        if args.resume and args.budget is not None:
            check_resume_budget(config.workspace, args.budget)
        configuration.check_llm(config)  # a missing key or a silent endpoint is said now, not after seeding
        # a live display for a terminal; into a file or a pipe, one line per event worth one, as it happens
        view = LiveView(config.budget) if console.is_terminal else PlainLines()
        try:
            with Live(view, console=console, refresh_per_second=4) if console.is_terminal else nullcontext():
                summary = run(config, resume=args.resume, listener=view.on_event)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: finished evaluations are saved; continue with --resume[/yellow]")
            return 130
    if summary.nothing_to_resume:
        console.print(f"run {summary.run_id} finished: {summary.spent}/{summary.budget} evaluations; nothing to resume")
        return 0
    console.print(f"run {summary.run_id} {summary.status}: {summary.spent}/{summary.budget} evaluations "
                  f"({summary.extra_seeds} on more seeds of contenders), {summary.duplicates} duplicate "
                  "proposal(s) skipped")
    if summary.reason:
        err.print(f"[yellow]stopped: {summary.reason}[/yellow]")
    if summary.llm is not None:
        from agents.llm import Usage

        console.print(f"LLM: {Usage(**summary.llm).describe()}")
    show_top(config.workspace, None, 10, as_json=False)
    if args.verify:
        from discover.provenance import verify_report

        try:
            reports = verified_front(config.workspace, config.workers, args.verify)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: the run is saved, and `discover verify` reuses the verification's "
                      "finished evaluations[/yellow]")
            return 130
        for report in reports:
            console.print(verify_report(report))
        if not reports:
            console.print("no searched design on the front to verify")
    show_top(config.workspace, None, 0, as_json=False, front=True)
    return 1 if summary.agents_failed else 0


def check_resume_budget(workspace: str | Path, budget: int) -> None:
    """A resumed run keeps the budget it was started with: asking for more is an error, not an extension."""
    from discover.workspace import Workspace

    if not Workspace(Path(workspace)).db_path.exists():
        return  # nothing to resume: a new run starts
    with opened(workspace, store="read") as session:
        latest = session.db.records.latest_run()
    if latest is not None and latest.budget is not None and budget > latest.budget:
        raise CommandError(f"run {latest.id} was started with a budget of {latest.budget} evaluations and --resume "
                           f"continues it as started; to spend {budget}, start a new run (without --resume)")


def show_top(workspace: str | Path, tier: str | None, k: int, as_json: bool, front: bool = False) -> None:
    """The leaderboard of ``discover top`` (at ``workspace_tier``), also printed at the end of ``run`` and
    ``seed``; with ``front``, the quality-cost front instead."""
    from discover.report import front_rows, front_table, leaderboard, leaderboard_table

    with opened(workspace, store="read") as session:
        tier = workspace_tier(session.db, tier)
        rows = front_rows(session.db, tier) if front else leaderboard(session.db, tier, k)
    present(as_json, rows, lambda: (front_table if front else leaderboard_table)(rows, tier))


def cmd_top(args: argparse.Namespace) -> int:
    show_top(args.workspace, args.tier, args.k, args.json, front=args.front)
    return 0


def _inspect(args: argparse.Namespace, fetch, render) -> int:
    """show, lineage, diff and log: read the workspace, then print the dict as JSON or rendered with rich."""
    from discover.inspect import InspectError, open_db
    from memory import SchemaError

    with opened(errors=(InspectError, SchemaError)), open_db(args.workspace) as db:
        info = fetch(db)
    present(args.json, info, lambda: render(info))
    return 0


def _at_tier(db, args: argparse.Namespace):
    """(tier, version) of ``show`` and ``diff``: ``--tier`` or the workspace's, at its version with results."""
    from discover import inspect

    return inspect.tier_key(db, workspace_tier(db, args.tier))


def cmd_show(args: argparse.Namespace) -> int:
    from discover import inspect

    return _inspect(args, lambda db: inspect.show(db, args.id, _at_tier(db, args)),
                    lambda info: inspect.render_show(info, args.code, highlight=console.is_terminal))


def cmd_lineage(args: argparse.Namespace) -> int:
    from discover import inspect

    return _inspect(args, lambda db: inspect.lineage(db, args.id, args.depth), inspect.render_lineage)


def cmd_diff(args: argparse.Namespace) -> int:
    from discover import inspect

    return _inspect(args, lambda db: inspect.diff(db, args.a, args.b, _at_tier(db, args)),
                    lambda info: inspect.render_diff(info, highlight=console.is_terminal))


def cmd_log(args: argparse.Namespace) -> int:
    from rich.console import Group

    from discover import inspect
    from memory import SchemaError

    if not args.follow:
        return _inspect(args, lambda db: inspect.run_log(db, args.run),
                        lambda info: Group(*(inspect.event_text(e) for e in info["events"])))
    with opened(errors=(inspect.InspectError, SchemaError)), inspect.open_db(args.workspace) as db:
        for event in inspect.follow(db, args.run):
            if args.json:
                print(json.dumps(event), flush=True)
            else:
                console.print(inspect.event_text(event))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from discover.inspect import InspectError
    from memory import SchemaError

    with opened(errors=(InspectError, SchemaError)):
        from discover.ui import DiscoverApp

        app = DiscoverApp(args.workspace)
    app.run()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from discover.provenance import replay_report
    from memory import RecordNotFound
    from memory.replay import ReplayError, replay

    with opened(args.workspace, store="write", status=f"replaying design {args.id} …",
                errors=(ReplayError, RecordNotFound)) as session:
        outcome = replay(session.db, session.archive, args.id, args.evaluation)
    present(args.json, outcome.to_dict(), lambda: replay_report(outcome))
    return 0 if outcome.reproduced else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from discover.provenance import verify_report

    report = verified(args.workspace, args.workers, args.tier, top=args.top, seeds=args.seeds,
                      references=args.references, design_ids=args.designs, confidence=args.confidence)
    present(args.json, report.to_dict(), lambda: verify_report(report))
    return 0


def verified(workspace, workers: int | None, tier: str | None, **options):
    """``memory.verify.verify`` in the workspace at `tier` (default: the workspace's), with a progress bar."""
    from memory import RecordNotFound
    from memory.verify import VerifyError

    with opened(workspace, store="write", workers=workers, errors=(VerifyError, RecordNotFound)) as session:
        return _verifying(session, workspace_tier(session.db, tier), **options)


def verified_front(workspace, workers: int | None, seeds: int) -> list:
    """Verify the searched designs on the workspace tier's quality-cost front with `seeds` seeds; their new
    seeds can move the front, so the designs it then holds unverified are verified in turn, until it holds
    none. Each design is tried once (one whose evaluations fail stays unverified, and the front says so),
    so this ends after at most as many rounds as there are searched designs. The reports, in order; none
    when the front holds no searched design."""
    import evaluator
    from discover.report import front_rows
    from memory import RecordNotFound
    from memory.verify import VerifyError

    reports, tried = [], set()
    with opened(workspace, store="write", workers=workers, errors=(VerifyError, RecordNotFound)) as session:
        tier = workspace_tier(session.db, None)
        version = evaluator.get_tier(tier).version
        while True:
            verdicts = {r["id"]: session.db.provenance.latest_verdict(r["id"], tier)
                        for r in front_rows(session.db, tier) if r["origin"] != "baseline" and r["id"] not in tried}
            due = [i for i, v in verdicts.items()
                   if v is None or v["tier_version"] != version or len(v["seeds"]) < seeds]
            if not due:
                return reports
            tried.update(due)
            reports.append(_verifying(session, tier, seeds=seeds, design_ids=due))


def _verifying(session, tier: str, **options):
    from rich.progress import Progress

    from memory.verify import verify

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"verifying at tier {tier}", total=None)
        return verify(session.db, session.archive, session.executor, tier, **options,
                      on_planned=lambda n: progress.update(task, total=n),
                      on_done=lambda name, seed, status: progress.advance(task))


def cmd_export(args: argparse.Namespace) -> int:
    from memory import RecordNotFound
    from memory.export import ExportError, export_design

    with opened(args.workspace, store="read", errors=(ExportError, RecordNotFound, OSError)) as session:
        exported = export_design(session.db, args.id, args.output)
    needs = ", ".join(("torch", *exported.requires))
    console.print(f"wrote {args.output}: design {args.id} with {len(exported.inlined)} reference module(s) inlined; "
                  f"needs {needs}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():  # before the evaluator (and torch) loads
        raise CommandError(f"no such file: {args.file}")
    from discover.provenance import import_report
    from memory.importer import ImportDesignError, import_design

    with opened(args.workspace, store="create", errors=(ImportDesignError,)) as session:
        tier = workspace_tier(session.db, args.tier)
        with console.status(f"checking and evaluating {args.file} at tier {tier} …"):
            outcome = import_design(session.recorder, args.file, tier, args.seed)
    present(args.json, outcome.to_dict(), lambda: import_report(outcome, args.file, tier))
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
    run.add_argument("--budget", type=int, default=None,
                     help="evaluations to spend (default: 8; with --resume, the run's own)")
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
    run.add_argument("--verify", type=int, default=0, metavar="S",
                     help="when the run ends, verify the searched designs on its quality-cost front with seeds "
                          "0..S-1 beside the best reference of each one's cost class, as `discover verify` does, "
                          "outside the budget; the designs the front then holds are verified in turn until it holds "
                          "no unverified one (default: 0, off)")
    run.add_argument("--config", default=None, metavar="FILE", help="a TOML configuration file")
    run.add_argument("--resume", action="store_true",
                     help="continue the latest run in the workspace with its own budget and tier; a finished run is "
                          "left as it is, and a --budget above the run's is an error (start a new run to spend more)")
    run.set_defaults(func=cmd_run)

    top = sub.add_parser("top", help="print the leaderboard",
                         description="Designs ranked by their mean score over seeds; the score compares each "
                                     "design with the best reference of its cost class or a cheaper one (constant "
                                     "< windowed < quadratic; a design without a recurrent form is ranked with "
                                     "quadratic); ◆ marks the quality-cost Pareto front. With --json: a list of "
                                     "rows, best first, each with rank, id, name, origin, score (the mean), seeds, "
                                     "interval (half-width of the mean's 95% interval, null on one seed), "
                                     f"{', '.join(LEADERBOARD)}, state_mb_16k, quality (0 at chance, 1 perfect), "
                                     "front, tier, seed and verified (the latest verification's verdict, null when "
                                     "not verified).")
    _tier_arg(top, None, WORKSPACE_TIER)
    _workspace_arg(top)
    top.add_argument("-k", type=int, default=20, help="rows (default: 20)")
    top.add_argument("--json", action="store_true", help="print the rows as JSON")
    top.add_argument("--front", action="store_true",
                     help="only the designs on the quality-cost front (of all scored designs, not the first k), "
                          "cheapest first, each with its verification verdict")
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
    _tier_arg(show, None, WORKSPACE_TIER + "; a design with no result there shows its latest tier's")
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
    _tier_arg(diff, None, WORKSPACE_TIER)
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
                                        "(see evaluator/reproduce.py), 1 when something differs, 2 on an error.")
    replay.add_argument("id", type=int, help="design id")
    replay.add_argument("--evaluation", type=int, default=None, metavar="EID",
                        help="the evaluation to replay (default: the design's best, the one `top` shows)")
    _workspace_arg(replay)
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.set_defaults(func=cmd_replay)

    verify = sub.add_parser("verify", help="re-evaluate the best designs with several seeds beside references")
    _tier_arg(verify, None, WORKSPACE_TIER)
    _workspace_arg(verify)
    verify.add_argument("--top", type=int, default=3, metavar="K", help="designs to verify (default: 3)")
    verify.add_argument("--seeds", type=int, default=3, metavar="S", help="seeds 0..S-1 per design (default: 3)")
    verify.add_argument("--references", nargs="+", metavar="NAME",
                        help="baselines to compare every design with (default: for each design, the best reference "
                             "of its cost class or a cheaper one, and linear_attention)")
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
    _tier_arg(import_, None, WORKSPACE_TIER)
    _workspace_arg(import_)
    import_.add_argument("--seed", type=int, default=0, help="evaluation seed (default: 0)")
    import_.add_argument("--json", action="store_true", help="print the outcome as JSON")
    import_.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    from discover.report import fit_to_output

    parser = build_parser()
    args = parser.parse_args(argv)
    fit_to_output(console, err)
    try:
        return args.func(args)
    except CommandError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): what is left unwritten goes nowhere, including at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command that a closed pipe ended


if __name__ == "__main__":
    sys.exit(main())
