"""Offline researchers: mutation and crossover give valid new points, guided by evidence, never known ones."""

from agents.base import Context, DesignSummary
from agents.offline.render import render_point
from agents.offline.researcher import OfflineResearcher, RandomResearcher, ValueStats
from agents.offline.space import LATE_CHOICES, applicable, canonical, diff, is_valid
from memory.baselines import BASELINE_POINTS
from memory.dedup import code_hash

SCORES = {"softmax_attention": 1.0, "deltanet": 0.8, "gated_deltanet": 0.85, "gla": 0.5}


def baselines() -> tuple[DesignSummary, ...]:
    return tuple(DesignSummary(i + 1, name, "baseline", point, SCORES.get(name, 0.4), {}, "ok")
                 for i, (name, point) in enumerate(BASELINE_POINTS.items()))


def context(designs=None, stats=None, known=frozenset()) -> Context:
    designs = baselines() if designs is None else designs
    top = tuple(sorted((d for d in designs if d.score is not None), key=lambda d: -d.score))
    known = frozenset(known)
    return Context(tier="quick", iteration=0, seed=0, top=top, baselines=designs, recent=(),
                   choice_stats=stats or {}, is_known=lambda code: code_hash(code) in known)


def stat(n: int, mean: float | None, fails: int = 0) -> dict:
    return {"n": n, "mean_score": mean, "fails": fails}


def test_mutation_changes_one_or_two_choices_of_a_recorded_parent():
    researcher = OfflineResearcher(seed=0, crossover=0.0)
    ctx = context()
    by_id = {d.id: d for d in ctx.baselines}
    for _ in range(40):
        proposal = researcher.propose(ctx)
        assert is_valid(proposal.spec) and canonical(proposal.spec) == proposal.spec
        (parent,) = proposal.parents
        changed = diff(by_id[parent].spec, proposal.spec)
        # A changed update rule can bring choices into play (its gate, its beta) or take them out; a late
        # choice shows only away from its default, so it appears or vanishes when chosen.
        deliberate = [c for c, (old, new) in changed.items()
                      if old is not None and new is not None or c in LATE_CHOICES and c in applicable(proposal.spec)]
        assert 1 <= len(deliberate) <= 2, changed
        assert proposal.plan.startswith(f"mutation of #{parent}")


def test_crossover_combines_two_parents_into_a_point_unlike_either():
    researcher = OfflineResearcher(seed=1, crossover=1.0)
    ctx = context()
    by_id = {d.id: d for d in ctx.baselines}
    for _ in range(30):
        proposal = researcher.propose(ctx)
        first, second = (by_id[i] for i in proposal.parents)
        assert is_valid(proposal.spec)
        assert proposal.spec not in (canonical(first.spec), canonical(second.spec))
        from_second = [c for c, v in proposal.spec.items() if canonical(second.spec).get(c) == v
                       and canonical(first.spec).get(c) != v]
        assert from_second, proposal.plan


def test_researcher_never_proposes_a_design_already_in_memory():
    researcher = OfflineResearcher(seed=2)
    designs = list(baselines())
    known = set()
    for i in range(40):
        proposal = researcher.propose(context(tuple(designs), known=known))
        code = code_hash(render_point(proposal.spec))
        assert code not in known
        assert proposal.spec not in [canonical(d.spec) for d in designs]
        known.add(code)
        designs.append(DesignSummary(100 + i, proposal.name, "offline", proposal.spec, 0.5, {}, "ok",
                                     proposal.parents))


def test_researcher_skips_the_best_looking_point_when_its_code_is_known():
    stats = {"beta": {"sigmoid": stat(5, 0.3), "2sigmoid": stat(5, 0.95)}}
    parent = DesignSummary(1, "deltanet", "baseline", BASELINE_POINTS["deltanet"], 0.8, {}, "ok")
    favourite = code_hash(render_point(BASELINE_POINTS["deltanet_negeig"]))
    for seed in range(10):
        proposal = OfflineResearcher(seed=seed, explore=0.0, crossover=0.0).propose(
            context((parent,), stats, known={favourite}))
        assert code_hash(render_point(proposal.spec)) != favourite


def test_mutation_follows_the_evidence_and_cites_it():
    stats = {"beta": {"sigmoid": stat(5, 0.3), "2sigmoid": stat(5, 0.9)}}
    parent = DesignSummary(1, "deltanet", "baseline", BASELINE_POINTS["deltanet"], 0.8, {}, "ok")
    for seed in range(10):
        proposal = OfflineResearcher(seed=seed, explore=0.0, crossover=0.0).propose(context((parent,), stats))
        assert proposal.spec["beta"] == "2sigmoid"
        cited = "beta=2sigmoid averaged 0.900 over 5 design(s) vs 0.300 over 5 for sigmoid"
        assert cited in proposal.motivation


def test_mutation_turns_a_late_choice_on_and_off_though_canonical_points_leave_its_default_out():
    for parent, stats, change, cited in [
        (BASELINE_POINTS["mamba2"], {"levels": {"single": stat(5, 0.3), "loglinear": stat(5, 0.9)}},
         [None, "loglinear"], "levels=loglinear averaged 0.900 over 5 design(s) vs 0.300 over 5 for single"),
        (BASELINE_POINTS["loglinear_mamba2"], {"levels": {"single": stat(5, 0.9), "loglinear": stat(5, 0.3)}},
         ["loglinear", None], "levels=single averaged 0.900 over 5 design(s) vs 0.300 over 5 for loglinear"),
    ]:
        summary = DesignSummary(1, "parent", "baseline", parent, 0.8, {}, "ok")
        for seed in range(5):
            proposal = OfflineResearcher(seed=seed, explore=0.0, crossover=0.0).propose(context((summary,), stats))
            assert diff(parent, proposal.spec)["levels"] == change
            assert cited in proposal.motivation


def test_mutation_moves_attention_layers_to_path_attention_on_the_evidence():
    stats = {"attention": {"full": stat(5, 0.3), "path": stat(5, 0.9)}}
    for name in ("softmax_attention", "deltanet_hybrid"):
        parent = DesignSummary(1, name, "baseline", BASELINE_POINTS[name], 0.8, {}, "ok")
        for seed in range(5):
            proposal = OfflineResearcher(seed=seed, explore=0.0, crossover=0.0).propose(context((parent,), stats))
            assert diff(BASELINE_POINTS[name], proposal.spec)["attention"] == ["full", "path"]
            assert "attention=path averaged 0.900 over 5 design(s) vs 0.300 over 5 for full" in proposal.motivation


def test_values_that_often_fail_are_avoided():
    stats = {"update": {"delta": stat(4, 0.6), "gated_delta": stat(6, 0.9, fails=5)}}
    parent = DesignSummary(1, "deltanet", "baseline", BASELINE_POINTS["deltanet"], 0.6, {}, "ok")
    for seed in range(10):
        proposal = OfflineResearcher(seed=seed, explore=0.0, crossover=0.0).propose(context((parent,), stats))
        assert proposal.spec["update"] != "gated_delta"


def test_untried_values_get_an_exploration_bonus():
    stats = ValueStats({"conv": {"0": stat(20, 0.6), "4": stat(20, 0.6)}}, explore=0.25, fail_penalty=0.5)
    assert stats.ucb("conv", 2) > stats.ucb("conv", 4) == stats.ucb("conv", 0)
    assert stats.mean("conv", 2) == stats.prior == 0.6
    assert "untried" in stats.evidence("conv", 2, 4)


def test_same_seed_and_context_give_the_same_proposals():
    ctx = context()
    a, b = OfflineResearcher(seed=5), OfflineResearcher(seed=5)
    assert [a.propose(ctx) for _ in range(5)] == [b.propose(ctx) for _ in range(5)]


def test_with_no_design_points_in_memory_the_researcher_starts_from_a_random_point():
    proposal = OfflineResearcher(seed=0).propose(context(designs=()))
    assert is_valid(proposal.spec) and proposal.parents == ()
    assert "no recorded design" in proposal.motivation


def test_designs_without_a_point_are_not_used_as_parents():
    llm = DesignSummary(1, "llm-design", "llm", None, 2.0, {}, "ok")
    proposal = OfflineResearcher(seed=0).propose(context(designs=(llm, *baselines()[1:])))
    assert 1 not in proposal.parents


def test_random_researcher_proposes_valid_unknown_points_without_parents():
    researcher = RandomResearcher(seed=3)
    known = set()
    for _ in range(20):
        proposal = researcher.propose(context(known=known))
        assert is_valid(proposal.spec) and proposal.parents == ()
        code = code_hash(render_point(proposal.spec))
        assert code not in known
        known.add(code)


def test_a_design_owed_seeds_is_not_a_parent_by_score():
    from dataclasses import replace

    designs = baselines()
    lucky = replace(designs[1], id=99, name="lucky", score=5.0, racing=True)  # one lucky seed, race pending
    ctx = context((*designs, lucky))
    researcher = OfflineResearcher(seed=0, explore=0.0, crossover=0.0)
    assert all(researcher.propose(ctx).parents != (99,) for _ in range(30))


def test_niches_of_the_archive_give_parents_beside_the_best():
    from dataclasses import replace

    designs = baselines()
    by_name = {d.name: d for d in designs}
    elites = (replace(by_name["retnet"], id=50), replace(by_name["based"], id=51))
    ctx = replace(context(designs), elites=elites)
    always = OfflineResearcher(seed=0, explore=0.0, crossover=0.0, niche=1.0)
    assert {always.propose(ctx).parents for _ in range(30)} <= {(50,), (51,)}
    pending = replace(ctx, elites=tuple(replace(e, racing=True) for e in elites))
    assert not {always.propose(pending).parents for _ in range(30)} & {(50,), (51,)}
