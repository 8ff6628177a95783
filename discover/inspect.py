"""Looking at what a workspace holds: one design, its lineage, the change between two designs, a run's events.

The functions return plain JSON-ready dicts (what ``discover show|lineage|diff|log --json`` print and
the terminal UI displays); the ``render_*`` functions turn them into rich renderables. Everything
here only reads: the database is opened read-only, so looking never gets in a running loop's way.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from discover.live import describe_event
from discover.report import fmt
from discover.workspace import Workspace
from evaluator.metrics import display_order
from memory import Evaluation, ExperienceDB, RecordNotFound

LINEAGE_DEPTH = 3  # levels of descendants `lineage` follows by default
LINEAGE_MAX_NODES = 500


class InspectError(LookupError):
    """The workspace, design or run asked for is not there."""


def open_db(workspace: str | Path) -> ExperienceDB:
    """The workspace's experience database, read-only."""
    path = Workspace(Path(workspace)).db_path
    if not path.exists():
        raise InspectError(f"no experience database in {workspace}; run `discover run` or `discover seed` first")
    return ExperienceDB(path, readonly=True)


def representative(evaluations: Sequence[Evaluation], tier: tuple[str, int] | None = None) -> Evaluation | None:
    """The evaluation that stands for a design, by the rule `top` and the UI's leaderboard share: never a replay
    (it repeats a record), else its best ok one by score, else its latest, among those at `tier` (tier, version)
    when it has any there, else at the tier of its latest evaluation (scores compare only within one tier and
    version)."""
    evaluations = [e for e in evaluations if e.purpose != "replay"]
    if not evaluations:
        return None
    at = [e for e in evaluations if (e.tier, e.tier_version) == tier]
    if not at:
        latest = max(evaluations, key=lambda e: e.id)
        at = [e for e in evaluations if (e.tier, e.tier_version) == (latest.tier, latest.tier_version)]
    return max(at, key=lambda e: (e.status == "ok", e.score is not None, e.score or 0.0, e.id))


def tier_key(db: ExperienceDB, name: str) -> tuple[str, int] | None:
    """(name, version) of the tier's most recently used version in the workspace; None when nothing ran there."""
    return next(((t["tier"], t["tier_version"]) for t in db.views.evaluated_tiers() if t["tier"] == name), None)


def evaluation_dict(evaluation: Evaluation, with_log: bool = True) -> dict[str, Any]:
    row = {"id": evaluation.id, "run_id": evaluation.run_id, "purpose": evaluation.purpose, "tier": evaluation.tier,
           "tier_version": evaluation.tier_version, "seed": evaluation.seed, "status": evaluation.status,
           "reason": evaluation.reason, "score": evaluation.score, "metrics": evaluation.metrics or {},
           "duration_s": evaluation.duration_s, "created_at": evaluation.created_at,
           "finished_at": evaluation.finished_at}
    if with_log:
        row["log"] = evaluation.log
    return row


def _design(db: ExperienceDB, design_id: int):
    try:
        return db.records.design(design_id)
    except RecordNotFound:
        raise InspectError(f"no design with id {design_id}") from None


def show(db: ExperienceDB, design_id: int, tier: tuple[str, int] | None = None) -> dict[str, Any]:
    """Everything recorded about one design: code, evaluations (with logs), its metrics beside its parent's and
    the baselines', the analyses, the LLM transcript and the verification verdict (None when not verified).
    `tier` (name, version) chooses which of its evaluations stands for it (see `representative`)."""
    design = _design(db, design_id)
    evaluations = db.records.evaluations(design_id)
    best = representative(evaluations, tier)
    return {
        "id": design.id, "name": design.name, "origin": design.origin, "motivation": design.motivation,
        "parents": list(design.parents), "children": db.views.child_ids(design_id), "run_id": design.run_id,
        "created_at": design.created_at, "archive_commit": design.archive_commit, "spec": design.spec,
        "code": design.code,
        "best": evaluation_dict(best, with_log=False) if best else None,
        "evaluations": [evaluation_dict(e) for e in evaluations],
        "comparison": comparison(db, design, best),
        "seeds": seed_scores(evaluations, best),
        "analyses": [{k: a[k] for k in ("id", "author", "text", "data", "evaluation_id", "created_at")}
                     for a in db.records.analyses(design_id)],
        "llm_calls": db.journal.design_llm_calls(design_id),
        "verification": verification(db, design_id),
        **twins_of(db, design_id, best),
    }


def twin_lines(info: dict[str, Any]) -> list[str]:
    """What ``show`` and the UI's design screen say of a design's twins (``twins_of``); none when it has none."""
    lines = []
    if original := info.get("twin_of"):
        lines.append(f"a twin: trained exactly as #{original['id']} {original['name']} (memory.twins), which stands "
                     "for it on the leaderboard and the front")
    if twins := info.get("twins"):
        named = ", ".join(f"#{t['id']} {t['name']}" for t in twins)
        lines.append(f"twins that trained exactly as this design: {named}")
    return lines


def twins_of(db: ExperienceDB, design_id: int, best: Evaluation | None) -> dict[str, Any]:
    """At the representative's tier and version: the design this one trained exactly as ("twin_of", None when
    none) and the designs that trained exactly as this one ("twins"), as ``memory.twins`` groups them."""
    twins = db.records.twins(best.tier, best.tier_version) if best else {}

    def named(i: int) -> dict[str, Any]:
        return {"id": i, "name": db.records.design(i).name}

    return {"twin_of": named(twins[design_id]) if design_id in twins else None,
            "twins": [named(t) for t, original in sorted(twins.items()) if original == design_id]}


def seed_scores(evaluations: list[Evaluation], best: Evaluation | None) -> dict[str, Any] | None:
    """The design's score per seed at its representative's tier and version (first ok evaluation per seed, no
    replays), their mean and the half-width of its 95% interval (None on one seed): what ``top`` ranks by."""
    if best is None:
        return None
    from memory.records import interval, scores_per_seed

    by_seed = scores_per_seed(evaluations, best.tier, best.tier_version)
    if not by_seed:
        return None

    values = list(by_seed.values())
    return {"scores": {str(seed): value for seed, value in sorted(by_seed.items())},
            "mean": round(sum(values) / len(values), 4), "interval": interval(values)}


def comparison(db: ExperienceDB, design, best: Evaluation | None) -> dict[str, Any] | None:
    """The design's metrics beside its first parent's and each baseline's, at the tier and version of its
    representative evaluation (results compare only within one tier and version)."""
    if best is None:
        return None
    parent = None
    if design.parents:
        at_tier = [e for e in db.records.evaluations(design.parents[0])
                   if (e.tier, e.tier_version) == (best.tier, best.tier_version)]
        chosen = representative(at_tier)
        parent = {"id": design.parents[0], "name": db.records.design(design.parents[0]).name,
                  "status": chosen.status if chosen else None, "score": chosen.score if chosen else None,
                  "metrics": chosen.metrics or {} if chosen else {}}
    rows, _ = db.views.leaderboard_page(best.tier, best.tier_version, origin="baseline", limit=100)
    baselines = [{"id": r["id"], "name": r["name"], "status": r["status"], "score": r["score"],
                  "metrics": r["metrics"]} for r in rows]
    return {"tier": best.tier, "tier_version": best.tier_version, "status": best.status,
            "metrics": best.metrics or {}, "score": best.score, "parent": parent, "baselines": baselines}


def verification(db: ExperienceDB, design_id: int) -> Any:
    """The design's latest verification (see ExperienceDB.latest_verdict), or None when it was never verified."""
    return db.provenance.latest_verdict(design_id)


def node(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in ("id", "name", "origin", "parents", "tier", "tier_version", "status", "score")}


def lineage(db: ExperienceDB, design_id: int, depth: int = LINEAGE_DEPTH,
            tier: tuple[str, int] | None = None) -> dict[str, Any]:
    """The design's ancestors along first parents (nearest first) and its descendants `depth` levels down.

    Each design appears as a node: id, name, origin, parents, and its representative evaluation's tier,
    status and score (at `tier`, when given). Descendants nest under "children"; at most LINEAGE_MAX_NODES
    are followed.
    """
    design = _design(db, design_id)
    ancestor_ids = [d.id for d in db.records.lineage(design.id)]
    tree, frontier, seen = {design_id: []}, [design_id], {design_id}
    for _ in range(max(depth, 0)):
        next_frontier, children = [], db.views.children_of(frontier)  # one pass over the designs per level
        for parent in frontier:
            for child in children.get(parent, []):
                if child not in seen and len(seen) < LINEAGE_MAX_NODES:
                    seen.add(child)
                    tree[parent].append(child)
                    tree[child] = []
                    next_frontier.append(child)
        frontier = next_frontier
    summaries = db.views.design_summaries([*ancestor_ids, *seen], *(tier or (None, None)))

    def nested(i: int) -> dict[str, Any]:
        return {**node(summaries[i]), "children": [nested(c) for c in tree[i]]}

    return {"design": node(summaries[design_id]), "ancestors": [node(summaries[i]) for i in ancestor_ids],
            "descendants": [nested(c) for c in tree[design_id]], "truncated": len(seen) >= LINEAGE_MAX_NODES}


def diff(db: ExperienceDB, a: int, b: int, tier: tuple[str, int] | None = None) -> dict[str, Any]:
    """The unified diff of design `a`'s code to design `b`'s, and their metrics side by side when their
    representative evaluations (at `tier`, when given, see `representative`) share a tier and version (else
    "metrics" is empty).

    The database holds every design's code, so this needs no archive; the archive gives the same change
    with `git diff refs/designs/A refs/designs/B`.
    """
    design_a, design_b = _design(db, a), _design(db, b)
    best_a = representative(db.records.evaluations(a), tier)
    best_b = representative(db.records.evaluations(b), (best_a.tier, best_a.tier_version) if best_a else tier)
    text = "".join(difflib.unified_diff(design_a.code.splitlines(keepends=True),
                                        design_b.code.splitlines(keepends=True),
                                        fromfile=f"#{a} {design_a.name}", tofile=f"#{b} {design_b.name}"))
    metrics = []
    comparable = (best_a is not None and best_b is not None
                  and (best_a.tier, best_a.tier_version) == (best_b.tier, best_b.tier_version))
    if comparable:
        ma, mb = best_a.metrics or {}, best_b.metrics or {}
        for name in display_order({*ma, *mb, "score"} - {"score"}):
            metrics.append({"metric": name, "a": ma.get(name), "b": mb.get(name), "delta": _delta(ma.get(name),
                                                                                                  mb.get(name))})
        metrics.insert(0, {"metric": "score", "a": best_a.score, "b": best_b.score,
                           "delta": _delta(best_a.score, best_b.score)})
    summaries = db.views.design_summaries([a, b])
    return {"a": node(summaries[a]), "b": node(summaries[b]), "diff": text,
            "tier": f"{best_a.tier}@v{best_a.tier_version}" if comparable else None, "metrics": metrics}


def _delta(a: Any, b: Any) -> float | None:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return round(b - a, 6) if numbers else None


def run_log(db: ExperienceDB, run_id: int | None = None, after_id: int = 0) -> dict[str, Any]:
    """A run (the latest by default) and its events after `after_id`, each with the line the live display shows."""
    if run_id is None:
        latest = db.records.latest_run()
        if latest is None:
            raise InspectError("the workspace has no runs yet")
        run_id = latest.id
    try:
        run = db.records.run(run_id)
    except RecordNotFound:
        raise InspectError(f"no run with id {run_id}") from None
    events = [{"id": e.id, "ts": e.ts, "kind": e.kind, "data": e.data, "text": describe_event(e.kind, e.data)}
              for e in db.records.events(run_id, after_id)]
    return {"run": {"id": run.id, "status": run.status, "tier": run.tier, "budget": run.budget,
                    "started_at": run.started_at, "ended_at": run.ended_at, "spent": db.records.spent(run.id)},
            "events": events}


def follow(db: ExperienceDB, run_id: int | None = None, poll_s: float = 1.0,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """The run's events (see `run_log`), then each new one as it is written, until its "run-end" event; a run
    that stopped without one (killed) ends the stream once no more events come."""
    log = run_log(db, run_id)
    run_id, last = log["run"]["id"], 0
    quiet = False
    while True:
        for event in log["events"]:
            yield event
            last = event["id"]
            if event["kind"] == "run-end":
                return
        if not log["events"] and log["run"]["status"] != "running":
            if quiet:
                return
            quiet = True  # the status may change just before the final event is written: look once more
        sleep(poll_s)
        log = run_log(db, run_id, last)


def _score_text(status: str | None, score: float | None) -> str:
    if status is None:
        return "not evaluated"
    return f"score {fmt(score)}" if status == "ok" else status


def node_label(n: dict[str, Any]) -> str:
    """One line for a design in a tree: id, name, origin and its result."""
    parents = n.get("parents") or ()
    crossover = f" — crossover of {' × '.join(f'#{p}' for p in parents)}" if len(parents) > 1 else ""
    return f"#{n['id']} {n['name']} ({n['origin']}) — {_score_text(n['status'], n['score'])}{crossover}"


def comparison_table(info: dict[str, Any], max_baselines: int | None = None) -> Table:
    """Metrics of the design beside its parent and the baselines (best baseline first)."""
    comp = info["comparison"]
    parent = comp["parent"]
    baselines = sorted(comp["baselines"], key=lambda b: (b["score"] is None, -(b["score"] or 0.0)))
    if max_baselines is not None:
        baselines = baselines[:max_baselines]
    table = Table(title=f"metrics at {comp['tier']}@v{comp['tier_version']}", box=None, title_justify="left")
    table.add_column("metric")
    table.add_column(f"#{info['id']}", justify="right", style="bold")
    if parent:
        table.add_column(f"parent #{parent['id']}", justify="right")
    for b in baselines:
        table.add_column(b["name"][:18], justify="right", style="dim")
    names = display_order({*comp["metrics"], *(parent or {}).get("metrics", {})} - {"cost_reason", "flops_reason"})

    def score(result: dict) -> str:
        return fmt(result["score"]) if result.get("status") in ("ok", None) else result["status"]

    table.add_row("score", score(comp), *([score(parent)] if parent else []), *(score(b) for b in baselines))
    for name in names:
        table.add_row(name, fmt(comp["metrics"].get(name)), *([fmt(parent["metrics"].get(name))] if parent else []),
                      *(fmt(b["metrics"].get(name)) for b in baselines))
    return table


def verification_line(verdict: Any) -> str | None:
    """A one-line summary of a verification verdict, or None when there is none to show."""
    if not verdict:
        return None
    if not isinstance(verdict, dict):
        return f"verification: {verdict}"
    where = (f"{verdict.get('tier')}@v{verdict.get('tier_version')}, {len(verdict.get('seeds') or ())} seeds, "
             f"confidence {fmt(verdict.get('confidence'))}")
    head = verdict.get("headline")
    if not head:
        return f"verification ({where}): {len(verdict.get('rows') or ())} verdicts, none on the score"
    phrase = {"better": "better than", "worse": "worse than", "not-distinguishable": "not distinguishable from",
              "insufficient": "too few results to compare with"}.get(head["verdict"], head["verdict"])
    return (f"verification ({where}): {phrase} {head['reference']} on {head['metric']} "
            f"(mean {fmt(head.get('mean'))} vs {fmt(head.get('reference_mean'))}, "
            f"difference in [{fmt(head.get('low'))}, {fmt(head.get('high'))}])")


def code_block(text: str, lexer: str, highlight: bool = True) -> RenderableType:
    """Code or a diff: highlighted with line numbers for a terminal, else (a file, a pipe) the text as it is."""
    if not highlight:
        return Text(text, no_wrap=True)
    return Syntax(text, lexer, line_numbers=lexer == "python", word_wrap=True)


def render_show(info: dict[str, Any], code: bool = False, highlight: bool = True) -> RenderableType:
    best = info["best"]
    parents = ", ".join(f"#{p}" for p in info["parents"]) or "none (a root)"
    head = Text.from_markup(f"[bold]#{info['id']} {escape(info['name'])}[/bold]  ({info['origin']}, "
                            f"run {info['run_id'] if info['run_id'] is not None else '—'})  parents: {parents}")
    parts: list[RenderableType] = [head, Text(info["motivation"] or "", style="italic")]
    if best:
        verdict = _score_text(best["status"], best["score"]) + (f" — {best['reason']}" if best["reason"] else "")
        parts.append(Text(f"{best['tier']}@v{best['tier_version']} seed {best['seed']}: {verdict}"))
        if (seeds := info.get("seeds")) and len(seeds["scores"]) > 1:
            spread = f" ± {fmt(seeds['interval'])}" if seeds["interval"] is not None else ""
            each = ", ".join(f"seed {seed}: {fmt(value)}" for seed, value in seeds["scores"].items())
            parts.append(Text(f"mean over {len(seeds['scores'])} seeds {fmt(seeds['mean'])}{spread} ({each})"))
        metrics = best.get("metrics") or {}
        if metrics.get("cost_class"):
            why = f": {metrics['cost_reason']}" if metrics.get("cost_reason") else ""
            parts.append(Text(f"cost class {metrics['cost_class']}{why}"))
    else:
        parts.append(Text("not evaluated yet"))
    if line := verification_line(info["verification"]):
        parts.append(Text(line))
    parts.extend(Text(line, style="yellow") for line in twin_lines(info))
    if info["comparison"]:
        parts.append(comparison_table(info, max_baselines=2))
    for analysis in info["analyses"][-1:]:
        parts.append(Text(f"analysis ({analysis['author']}): {analysis['text']}"))
    if info["llm_calls"]:
        parts.append(Text(f"{len(info['llm_calls'])} LLM call(s); `discover show {info['id']} --json` has them"))
    if code:
        parts.append(code_block(info["code"], "python", highlight))
    return Group(*parts)


def render_lineage(info: dict[str, Any]) -> Tree:
    """The lineage as a tree from the oldest ancestor down through the design to its descendants."""
    chain = [*reversed(info["ancestors"]), info["design"]]
    tree = Tree(node_label(chain[0]), guide_style="dim")
    branch = tree
    for n in chain[1:]:
        branch = branch.add(node_label(n))
    branch.label = Text(str(node_label(info["design"])), style="bold")

    def grow(parent: Tree, children: list[dict]) -> None:
        for child in children:
            grow(parent.add(node_label(child)), child["children"])

    grow(branch, info["descendants"])
    return tree


def render_diff(info: dict[str, Any], highlight: bool = True) -> RenderableType:
    parts: list[RenderableType] = []
    if info["metrics"]:
        table = Table("metric", f"#{info['a']['id']}", f"#{info['b']['id']}", "delta", box=None,
                      title=f"at {info['tier']}", title_justify="left")
        for row in info["metrics"]:
            table.add_row(row["metric"], fmt(row["a"]), fmt(row["b"]), fmt(row["delta"]))
        parts.append(table)
    else:
        parts.append(Text("no metrics to compare: the two designs have no results at a common tier", style="dim"))
    parts.append(code_block(info["diff"], "diff", highlight) if info["diff"]
                 else Text("the two designs have the same code"))
    return Group(*parts)


def event_text(event: dict[str, Any]) -> Text:
    """A `discover log` line: time, kind and the description the live display uses."""
    colour = {"evaluate-done": "green" if (event["data"] or {}).get("status") == "ok" else "red",
              "duplicate": "yellow", "run-end": "bold"}.get(event["kind"], "")
    line = Text(f"{event['ts'][11:19]}  ", style="dim")
    line.append(event["text"], style=colour)
    return line
