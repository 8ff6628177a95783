"""Twins: different design files that train exactly alike stand as one design on the leaderboard, the
front, racing and the agents' context (memory.twins)."""

from pathlib import Path

import pytest

from agents.base import DesignSummary
from agents.llm.views import outcome_text
from discover import inspect
from discover.loop import contenders, run
from discover.report import front_table, leaderboard, leaderboard_table
from discover.ui.design import DesignScreen
from evaluator import get_tier
from evaluator.run import EvalResult
from memory import ExperienceDB
from memory.context import ContextBuilder
from memory.twins import Twins, signature
from tests.test_loop import GOOD, config, scripted_roles

TIER = get_tier("smoke")
TRAINED = {"init_loss": 5.5452, "mqar_acc": 0.3125, "mqar_final_loss": 3.9021, "lm_bpb": 3.6612,
           "cost_class": "constant", "state_mb_16k": 0.031, "tokens_per_s": 1200.0, "mqar_train_s": 9.5}


def trained(**changes) -> dict:
    return {**TRAINED, **changes}


def test_a_signature_needs_an_accuracy_and_a_loss_and_ignores_the_machine():
    assert signature(0, {"mqar_acc": 0.5}) is None  # nothing that training lowered: too little to tell apart
    assert signature(0, {"init_loss": 5.5, "mqar_final_loss": 3.9}) is None
    assert signature(0, trained()) == signature(0, trained(tokens_per_s=800.0, mqar_train_s=14.0, peak_rss_mb=3.0))
    assert signature(0, trained()) != signature(1, trained())  # another seed is another experiment
    for change in ({"mqar_acc": 0.3126}, {"lm_bpb": 3.6613}, {"init_loss": 5.5453}, {"cost_class": "quadratic"},
                   {"state_mb_16k": 0.062}, {"parity_acc": 0.5}):
        assert signature(0, trained()) != signature(0, trained(**change)), change
    assert signature(0, trained(parity_acc=True)) == signature(0, trained())  # a flag is no result: left out


def test_twins_group_by_any_shared_seed_and_a_reference_stands_for_its_group():
    twins = Twins()
    twins.add(5, 0, trained())
    twins.add(7, 0, trained(mqar_acc=0.1))  # not a twin of 5
    twins.add(9, 0, trained())
    assert twins.of() == {9: 5}
    twins.add(7, 1, trained(lm_bpb=2.0))
    twins.add(5, 1, trained(lm_bpb=2.0))  # 5 and 7 agree on seed 1: one group of three, 5 the oldest
    assert twins.of() == {7: 5, 9: 5}
    twins.add(2, 0, trained(), reference=True)  # a reference evaluated later still stands for the group
    assert twins.of() == {5: 2, 7: 2, 9: 2}
    twins.add(11, 0, {"mqar_acc": 0.3125})  # seen, no signature: no twin
    assert twins.original(11) == 11 and 11 not in twins.of()


def test_twins_are_the_same_whatever_order_evaluations_are_seen_in():
    rows = [(4, 0, trained()), (6, 0, trained(lm_bpb=1.0)), (8, 1, trained()), (6, 1, trained()),
            (3, 0, trained(lm_bpb=1.0)), (9, 2, trained(mqar_acc=0.9))]
    found = []
    for order in (rows, rows[::-1], rows[2:] + rows[:2]):
        twins = Twins()
        for design_id, seed, metrics in order:
            twins.add(design_id, seed, metrics)
        found.append(twins.of())
    # 3 and 6 agree on seed 0, 6 and 8 on seed 1; 4 and 8 hold the same metrics at different seeds: no twins
    assert found[0] == found[1] == found[2] == {6: 3, 8: 3}


def result(seed: int = 0, status: str = "ok", **metrics) -> EvalResult:
    return EvalResult(status, "", TIER.name, TIER.version, seed, metrics)


@pytest.fixture
def searched(store):
    """A reference, a design, its twin, a design trained to other results, and a twin of the reference."""
    db, recorder = store
    ids = {"ref": recorder.baseline("linear_attention", {"update": "additive"})}
    recorder.finish(recorder.begin(ids["ref"], TIER, 0, purpose="seed"), result(**trained(mqar_acc=0.2)))
    for name, metrics in (("a", trained()), ("a-twin", trained()), ("b", trained(mqar_acc=0.25)),
                          ("ref-twin", trained(mqar_acc=0.2))):
        code = GOOD.replace("class Mixer", f"NAME = {name!r}\n\n\nclass Mixer")
        ids[name] = recorder.design(code, name=name, motivation="", origin="offline",
                                    spec={"update": "additive"}).design_id
        recorder.finish(recorder.begin(ids[name], TIER, 0, purpose="search"), result(**metrics))
    recorder.rescore(TIER.name)  # as seeding references does: their own rows get scores
    return db, recorder, ids


def test_the_leaderboard_and_the_front_leave_twins_out_and_name_them(searched):
    db, _, ids = searched
    assert db.records.twins(TIER.name, TIER.version) == {ids["a-twin"]: ids["a"], ids["ref-twin"]: ids["ref"]}
    rows = leaderboard(db, TIER.name, 20)
    assert [r["id"] for r in rows] == [ids["a"], ids["b"], ids["ref"]]
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids["a"]]["twins"] == [{"id": ids["a-twin"], "name": "a-twin"}]
    assert by_id[ids["b"]]["twins"] == []
    for table in (leaderboard_table(rows, TIER.name), front_table([r for r in rows if r["front"]], TIER.name)):
        assert f"{ids['a-twin']} a-twin = {ids['a']} a" in table.caption
    assert [r.design.id for r in db.records.ranked(TIER.name, 10, TIER.version)] == [ids["a"], ids["b"], ids["ref"]]
    page, total = db.views.leaderboard_page(TIER.name, TIER.version, hide=[ids["a-twin"], ids["ref-twin"]])
    assert total == 3 and {r["id"] for r in page} == {ids["a"], ids["b"], ids["ref"]}


def test_show_names_a_twin_and_the_twins_of_its_original(searched):
    db, _, ids = searched
    tier = (TIER.name, TIER.version)
    twin = inspect.show(db, ids["a-twin"], tier)
    assert twin["twin_of"] == {"id": ids["a"], "name": "a"} and twin["twins"] == []
    original = inspect.show(db, ids["a"], tier)
    assert original["twin_of"] is None and original["twins"] == [{"id": ids["a-twin"], "name": "a-twin"}]
    text = str(inspect.render_show(twin).renderables)
    assert f"trained exactly as #{ids['a']} a" in text
    assert f"#{ids['a-twin']} a-twin" in str(inspect.render_show(original).renderables)
    screen = str(DesignScreen._overview(twin).renderables)  # the terminal UI's design screen says the same
    assert f"trained exactly as #{ids['a']} a" in screen


def test_the_agents_context_keeps_twins_out_of_top_and_elites_and_says_so(searched):
    db, recorder, ids = searched
    context = ContextBuilder(db.views, TIER.name, TIER.version, seed=0).context(5)
    assert ids["a-twin"] not in {d.id for d in (*context.top, *context.elites)}
    assert ids["a"] in {d.id for d in context.top}
    recent = {d.id: d for d in context.recent}
    assert recent[ids["a-twin"]].twin_of == ids["a"] and recent[ids["b"]].twin_of is None
    assert f"trained exactly as design {ids['a']}" in outcome_text(recent[ids["a-twin"]])
    plain = DesignSummary(1, "x", "llm", None, 0.5, {}, "ok", seed_scores=(0.5,))
    assert "exactly" not in outcome_text(plain)


def test_a_twin_is_not_raced(searched):
    db, recorder, ids = searched
    run_id = db.records.start_run(10, TIER.name, {}, "ws")
    for name in ("a", "a-twin", "b"):
        recorder.finish(recorder.begin(ids[name], TIER, 5, purpose="search", run_id=run_id),
                        result(5, **trained(mqar_acc={"b": 0.7}.get(name, 0.6))))

    class NoFlights:
        def design_ids(self):
            return set()

    cfg = type("Config", (), {"race_seeds": 3, "seed": 5})()
    raced = [design_id for design_id, _ in contenders(db.records, TIER, cfg, run_id, NoFlights())]
    assert ids["a"] in raced and ids["a-twin"] not in raced


def test_a_run_finds_a_design_that_computes_the_same_function_in_other_code(tmp_path):
    """Real evaluations: 1 + elu(x) is elu(x) + 1 to the last bit, though the code and its structure differ, so
    dedup lets it through and training shows it; a different feature map is a design of its own."""
    twin = GOOD.replace("q, k = F.elu(q) + 1, F.elu(k) + 1", "q, k = 1 + F.elu(q), 1 + F.elu(k)")
    other = GOOD.replace("F.elu(q) + 1, F.elu(k) + 1", "F.relu(q) + 1, F.relu(k) + 1")
    assert twin.count("1 + F.elu") == 4 and other != GOOD  # forward and step
    summary = run(config(tmp_path, budget=3), roles=scripted_roles([GOOD, twin, other]))
    assert summary.spent == 3 and summary.duplicates == 0
    with ExperienceDB(Path(tmp_path / "ws" / "experience.db")) as db:
        by_code = {d.code: d.id for d in db.records.designs()}
        tier = get_tier("full-tiny")
        assert db.records.twins(tier.name, tier.version) == {by_code[twin]: by_code[GOOD]}
        events = [e for e in db.records.events(summary.run_id) if e.kind == "twin"]
        assert [(e.data["design_id"], e.data["original_id"]) for e in events] == [(by_code[twin], by_code[GOOD])]
        shown = {r["id"] for r in leaderboard(db, tier.name, 20)}
        assert by_code[GOOD] in shown and by_code[other] in shown and by_code[twin] not in shown


def test_a_reference_copy_disguised_by_a_tiny_rescaling_is_still_its_twin(tmp_path):
    """Attack: repeat a design with its output scaled by 1 + 1e-6, so no code or structure matches and no bit
    of the forward pass does either, hoping to pass as a design of its own. Training moves no recorded digit,
    so it is a twin all the same; a rescaling that does move them (1 + 1e-2) makes a design of its own."""
    tiny = GOOD.replace("self.out(y)", "self.out(y) * (1 + 1e-6)")  # in forward and in step
    visible = GOOD.replace("self.out(y)", "self.out(y) * (1 + 1e-2)")
    assert tiny.count("1e-6") == visible.count("1e-2") == 2
    summary = run(config(tmp_path, budget=3), roles=scripted_roles([GOOD, tiny, visible]))
    assert summary.spent == 3 and summary.duplicates == 0
    with ExperienceDB(Path(tmp_path / "ws" / "experience.db")) as db:
        by_code = {d.code: d.id for d in db.records.designs()}
        tier = get_tier("full-tiny")
        assert all(e.status == "ok" for i in by_code.values() for e in db.records.evaluations(i))
        assert db.records.twins(tier.name, tier.version) == {by_code[tiny]: by_code[GOOD]}
