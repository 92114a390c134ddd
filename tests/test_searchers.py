"""The searchers: the msrl agent's Q-learning (hand-computed tables in the paper's and the
standard form), its cyclic walk, grid / random / Optuna behaviour, and the search loop's rule of
one training per configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salesfusion.models.search_space import parse_space
from salesfusion.tuning.searchers import build_searcher
from salesfusion.tuning.searchers.msrl import q_update

THREE_STATES = {"hidden": {"type": "int", "low": 8, "high": 16, "actions": [8, 16]},
                "epochs": {"type": "int", "low": 1, "high": 2, "actions": [1, 2]},
                "lr": {"type": "float", "low": 0.01, "high": 0.1, "actions": [0.01, 0.1]}}
START = {"hidden": 8, "epochs": 1, "lr": 0.01}


def test_q_update_paper_and_standard_forms_by_hand() -> None:
    # eq. 17: target = R - gamma * max Q(s', .) = 10 - 0.1 * 0 = 10; eq. 16: Q - alpha (T - Q)
    assert q_update(0.0, 10.0, np.array([0.0, -2.0]), 0.5, 0.1, "paper") == pytest.approx(-5.0)
    # a terminal step (after s3): the target is R alone
    assert q_update(-5.0, 12.0, None, 0.5, 0.1, "paper") == pytest.approx(-13.5)
    # standard, for a cost: target = R + gamma * min Q(s', .) = 10 - 0.2; Q + alpha (T - Q)
    assert q_update(0.0, 10.0, np.array([0.0, -2.0]), 0.5, 0.1, "standard") == \
        pytest.approx(4.9)
    assert q_update(4.9, 12.0, None, 0.5, 0.1, "standard") == pytest.approx(8.45)


def _index(space: dict, name: str, value: object) -> int:
    return space[name]["actions"].index(value)


@pytest.mark.parametrize("rule", ["paper", "standard"])
def test_msrl_walks_s1_s2_s3_and_fills_the_q_table_as_computed_by_hand(rule: str) -> None:
    space = parse_space(THREE_STATES, "test")
    agent = build_searcher("msrl", space, 3, {"update": rule, "levels": 1, "epsilon": 0.0,
                                              "alpha": 0.5, "gamma": 0.1}, START)
    rewards = [10.0, 8.0, 6.0, 12.0]
    proposals = []
    for reward in rewards:
        proposal = agent.ask()
        proposals.append(proposal)
        agent.tell(proposal, reward)
    # Each step changes only its own state's quantity (s1 hidden, s2 epochs, s3 lr, s1 again).
    names = ["hidden", "epochs", "lr", "hidden"]
    for previous, current, name in zip([{**START}] + [p.params for p in proposals],
                                       [p.params for p in proposals], names, strict=False):
        assert {k for k in current if current[k] != previous[k]} <= {name}
    a = _index(THREE_STATES, "hidden", proposals[0].params["hidden"])
    b = _index(THREE_STATES, "epochs", proposals[1].params["epochs"])
    c = _index(THREE_STATES, "lr", proposals[2].params["lr"])
    second = _index(THREE_STATES, "hidden", proposals[3].params["hidden"])
    expected = [np.zeros(2), np.zeros(2), np.zeros(2)]
    if rule == "paper":
        # s1: T = 10 - 0.1 * max(0, 0) = 10, Q = 0 - 0.5 * (10 - 0) = -5; s2: -4; s3 (terminal)
        # -3. Back in s1 the greedy (lowest) action is the one taken before (-5 < 0); T = 12 -
        # 0.1 * max(-4, 0) = 12 and Q = -5 - 0.5 * (12 + 5) = -13.5.
        assert second == a
        expected[0][a], expected[1][b], expected[2][c] = -13.5, -4.0, -3.0
    else:
        # s1: T = 10 + 0.1 * min(0, 0), Q = 5; s2: 4; s3: 3. Back in s1 the greedy action is the
        # untried one (0 < 5): T = 12 + 0.1 * min(4, 0) = 12, Q = 6.
        assert second == 1 - a
        expected[0][a], expected[0][1 - a] = 5.0, 6.0
        expected[1][b], expected[2][c] = 4.0, 3.0
    for table, want in zip(agent.fine, expected, strict=True):
        np.testing.assert_allclose(table, want)


@pytest.mark.parametrize("rule", ["paper", "standard"])
def test_msrl_two_levels_by_hand(rule: str) -> None:
    # One state of four actions in two ranges ([0, 1], [2, 3]): every step is terminal.
    space = parse_space({"hidden": {"type": "int", "low": 8, "high": 64,
                                    "actions": [8, 16, 32, 64]}}, "test")
    agent = build_searcher("msrl", space, 5, {"update": rule, "levels": 2, "ranges": 2,
                                              "epsilon": 0.0, "alpha": 0.5}, {"hidden": 8})
    first = agent.ask()
    agent.tell(first, 10.0)
    second = agent.ask()
    agent.tell(second, 14.0)
    a = [8, 16, 32, 64].index(first.params["hidden"])
    b = [8, 16, 32, 64].index(second.params["hidden"])
    fine, coarse = np.zeros(4), np.zeros(2)
    if rule == "paper":
        # Step 1: Q_f = -0.5 * 10 = -5; coarse reward (10 + best 10) / 2 = 10, Q_c = -5.
        # Step 2 repeats the greedy range and action: Q_f = -5 - 0.5 * (14 + 5) = -14.5; coarse
        # reward (14 + best 10) / 2 = 12, Q_c = -5 - 0.5 * (12 + 5) = -13.5.
        assert b == a
        fine[a], coarse[a // 2] = -14.5, -13.5
    else:
        # Step 1: Q_f = Q_c = 5; step 2 takes the other range (0 < 5): Q_f = Q_c = 7.
        assert b // 2 == 1 - a // 2
        fine[a], coarse[a // 2] = 5.0, 5.0
        fine[b], coarse[b // 2] = 7.0, 7.0
    np.testing.assert_allclose(agent.fine[0], fine)
    np.testing.assert_allclose(agent.coarse[0], coarse)


def test_msrl_starts_from_the_preset_values_and_is_seeded() -> None:
    space = parse_space(THREE_STATES, "test")
    runs = []
    for _ in range(2):
        agent = build_searcher("msrl", space, 7, {}, {"hidden": 16, "epochs": 2, "lr": 0.1})
        assert agent.current == [1, 1, 1]
        sequence = []
        for step in range(9):
            proposal = agent.ask()
            sequence.append(proposal.params)
            agent.tell(proposal, float(10 + step % 4))
        runs.append(sequence)
    assert runs[0] == runs[1]


def test_grid_is_exhaustive_then_done() -> None:
    space = parse_space(THREE_STATES, "test")
    grid = build_searcher("grid", space, 0, {}, START)
    seen = []
    while (proposal := grid.ask()) is not None:
        seen.append(tuple(proposal.params.values()))
    assert len(seen) == len(set(seen)) == 8
    shuffled = build_searcher("grid", space, 1, {"shuffle": True}, START)
    order = [tuple(shuffled.ask().params.values()) for _ in range(8)]
    assert sorted(order) == sorted(seen) and order != seen


def test_random_draws_in_range_on_the_declared_scale_and_is_seeded() -> None:
    space = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                         "hidden": {"type": "int", "low": 8, "high": 512, "log": True},
                         "layers": {"type": "int", "low": 1, "high": 5, "step": 2}}, "test")
    draws = [build_searcher("random", space, 11, {}, {}) for _ in range(2)]
    first = [draws[0].ask().params for _ in range(400)]
    assert first == [draws[1].ask().params for _ in range(400)]
    lrs = np.array([p["lr"] for p in first])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # log-uniform: about a third of the draws in each decade
    assert 0.2 < np.mean(lrs < 1e-3) < 0.45
    assert {p["layers"] for p in first} == {1, 3, 5}
    assert all(8 <= p["hidden"] <= 512 for p in first)


def test_optuna_is_reproducible_and_searches_action_indices_when_discrete() -> None:
    space = parse_space(THREE_STATES, "test")
    sequences = []
    for _ in range(2):
        tpe = build_searcher("optuna", space, 4, {"discrete": True, "startup_trials": 2}, START)
        sequence = []
        for step in range(6):
            proposal = tpe.ask()
            sequence.append(proposal.params)
            tpe.tell(proposal, float(proposal.params["hidden"] + step))
        sequences.append(sequence)
    assert sequences[0] == sequences[1]
    for params in sequences[0]:
        for name, values in THREE_STATES.items():
            assert params[name] in values["actions"]


def test_optuna_median_pruner_stops_a_hopeless_trial() -> None:
    space = parse_space(THREE_STATES, "test")
    tpe = build_searcher("optuna", space, 0, {"pruner": "median", "warmup_epochs": 1}, START)
    for _ in range(3):
        proposal = tpe.ask()
        assert not any(tpe.report(proposal, epoch, 1.0) for epoch in (1, 2, 3))
        tpe.tell(proposal, 1.0)
    hopeless = tpe.ask()
    assert not tpe.report(hopeless, 1, 50.0)  # within the warm-up
    assert tpe.report(hopeless, 2, 50.0)
    tpe.tell(hopeless, None)
    states = [t.state.name for t in tpe.study.trials]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]


def test_optuna_on_a_storage_resumes_as_if_never_interrupted(tmp_path: Path) -> None:
    space = parse_space(THREE_STATES, "test")

    def run(storage: str, scores: list[float], interrupt: bool) -> list[dict]:
        tpe = build_searcher("optuna", space, 9, {"storage": storage, "startup_trials": 2},
                             START)
        tpe.owner = "search-1"
        proposals = []
        for score in scores:
            proposal = tpe.ask()
            proposals.append(proposal.params)
            tpe.tell(proposal, score)
        if interrupt:  # a trial running when the process dies
            killed = tpe.ask()
            return [*proposals, tpe.reference(killed)]
        return proposals

    scores = [3.0, 1.0, 2.0, 0.5]
    then = build_searcher  # a later process on the same storage
    uninterrupted = [*run(f"sqlite:///{tmp_path / 'a.db'}", scores, False),
                     then("optuna", space, 9, {"storage": f"sqlite:///{tmp_path / 'a.db'}",
                                               "startup_trials": 2}, START).ask().params]
    *before, killed = run(f"sqlite:///{tmp_path / 'b.db'}", scores, True)
    resumed = build_searcher("optuna", space, 9, {"storage": f"sqlite:///{tmp_path / 'b.db'}",
                                                  "startup_trials": 2}, START)
    resumed.owner = "search-1"
    resumed.recover({})  # the killed trial never ended
    assert [*before, resumed.ask().params] == uninterrupted
    assert [t.state.name for t in resumed.study.trials][:5] == ["COMPLETE"] * 4 + ["FAIL"]
    assert killed == 4


def test_optuna_recovery_settles_only_its_own_open_trials(tmp_path: Path) -> None:
    space = parse_space(THREE_STATES, "test")
    storage = {"storage": f"sqlite:///{tmp_path / 's.db'}"}
    mine, other = (build_searcher("optuna", space, seed, storage, START) for seed in (1, 2))
    mine.owner, other.owner = "mine", "other"
    logged_then_killed, killed_in_trial = mine.ask(), mine.ask()
    elsewhere = other.ask()  # another process's trial, still running
    resumed = build_searcher("optuna", space, 1, storage, START)
    resumed.owner = "mine"
    resumed.recover({mine.reference(logged_then_killed): ("complete", 0.7)})
    trials = {t.number: t for t in resumed.study.get_trials()}
    assert trials[logged_then_killed.token.number].state.name == "COMPLETE"
    assert trials[logged_then_killed.token.number].value == 0.7
    assert trials[killed_in_trial.token.number].state.name == "FAIL"
    assert trials[elsewhere.token.number].state.name == "RUNNING"


def test_bad_searcher_options_name_the_option() -> None:
    from salesfusion.errors import InputError

    space = parse_space(THREE_STATES, "test")
    with pytest.raises(InputError, match="searcher 'msrl', option 'update'"):
        build_searcher("msrl", space, 0, {"update": "sideways"}, START)
    with pytest.raises(InputError, match="searcher 'grid', option 'shufle'"):
        build_searcher("grid", space, 0, {"shufle": True}, START)
    with pytest.raises(InputError, match="unknown searcher 'hill'"):
        build_searcher("hill", space, 0, {}, START)


def test_optuna_hyperband_pruner_stops_a_hopeless_trial() -> None:
    space = parse_space({**THREE_STATES, "epochs": {"type": "int", "low": 1, "high": 9,
                                                    "actions": [3, 9]}}, "test")
    tpe = build_searcher("optuna", space, 0, {"pruner": "hyperband", "warmup_epochs": 1}, START)
    for _ in range(6):
        proposal = tpe.ask()
        for epoch in range(1, 10):
            tpe.report(proposal, epoch, 1.0 / epoch)
        tpe.tell(proposal, 0.1)
    hopeless = tpe.ask()
    assert any(tpe.report(hopeless, epoch, 100.0) for epoch in range(1, 10))
