"""The experiment's statistics: the two-level paired bootstrap, Holm, "not estimable", the
power statement and the verdict strings."""

import numpy as np
import pytest

from qeu_utils.experiment.stats import (
    detectable_effect,
    holm,
    not_estimable,
    paired_bootstrap,
    power_statement,
    verdict,
)


def _cells(rng, effect, seeds=5, items=200, seed_sd=0.2, item_sd=0.5):
    """Per-(seed, item) scores of two conditions: a shared item difficulty, a condition-by-seed
    and a condition-by-item effect, noise; ``first`` is ``effect`` higher on average."""
    difficulty = rng.normal(0, 1, items)
    first = (difficulty + effect + rng.normal(0, seed_sd, (seeds, 1))
             + rng.normal(0, item_sd, items) + rng.normal(0, 1, (seeds, items)))
    second = difficulty + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 1, (seeds, items))
    return first, second


def test_a_positive_effect_excludes_zero_and_a_null_includes_it():
    rng = np.random.default_rng(0)
    first, second = _cells(rng, effect=0.5, seed_sd=0.1)
    shown = paired_bootstrap(first, second)
    assert 0 < shown["ci_lo"] <= shown["difference"] <= shown["ci_hi"]
    assert shown["p"] < 0.05 and shown["n_seeds"] == 5 and shown["n_items"] == 200
    first, second = _cells(rng, effect=0.0, seed_sd=0.1)
    null = paired_bootstrap(first, second)
    assert null["ci_lo"] < 0 < null["ci_hi"] and null["p"] > 0.05
    assert paired_bootstrap(first, second) == null  # fixed RNG seed


def test_the_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for k in range(40):
        first, second = _cells(rng, effect=0.1, items=100)
        row = paired_bootstrap(first, second, n_boot=500, seed=k)
        covered += row["ci_lo"] <= 0.1 <= row["ci_hi"]
    assert covered >= 34  # ≥ 85%: five seeds make the seed part a little narrow


def test_the_interval_carries_seed_variance_that_an_item_bootstrap_would_miss():
    """Every item moves together within a seed: a bootstrap over items alone would give a
    narrow interval around one seed's luck; resampling seeds widens it."""
    rng = np.random.default_rng(2)
    first, second = _cells(rng, effect=0.0, seed_sd=1.0, item_sd=0.1)
    both = paired_bootstrap(first, second)
    items_only = paired_bootstrap(first.mean(axis=0, keepdims=True),
                                  second.mean(axis=0, keepdims=True))
    assert both["ci_hi"] - both["ci_lo"] > 2 * (items_only["ci_hi"] - items_only["ci_lo"])


def test_a_condition_without_seeds_is_paired_with_every_seed():
    base = np.array([[0.0, 1.0, 0.0, 1.0]])
    trained = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    row = paired_bootstrap(trained, base)
    assert row["difference"] == 0.5 and row["n_seeds"] == 2 and row["n_items"] == 4
    weighted = paired_bootstrap(trained, base, weights=[1, 1, 1, 3])
    assert weighted["difference"] == pytest.approx(2 / 6)


def test_holm_on_a_textbook_example():
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → the
    # running maximum 0.02, 0.03, 0.06, 0.06, given back in the input's order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([0.02]) == [0.02]


def test_a_metric_at_its_floor_in_every_condition_is_not_estimable():
    zeros = np.zeros((3, 10))
    assert not_estimable([zeros, zeros], (0.0, 1.0))
    assert not_estimable([np.ones((3, 10)), np.ones((1, 10))], (0.0, 1.0))
    some = zeros.copy()
    some[0, 0] = 1
    assert not not_estimable([zeros, some], (0.0, 1.0))
    assert not not_estimable([zeros, zeros], None)  # a margin has no floor


def test_the_verdict_strings():
    assert verdict({"difference": 0.2, "p": 0.001, "p_holm": 0.002}, "higher") == "better"
    assert verdict({"difference": 0.2, "p": 0.001}, "lower") == "worse"
    assert verdict({"difference": -0.2, "p": 0.01, "p_holm": 0.06}, "higher") == \
        "no clear difference"
    assert verdict({"difference": 0.0, "p": 1.0, "not_estimable": True}, "higher") == \
        "not estimable"


def test_the_detectable_effect():
    # the rule of thumb: about 300 paired items detect 6–7 points from 5%
    assert detectable_effect(300, p0=0.05) == pytest.approx(0.062, abs=0.002)
    # a margin: (1.96 + 0.84) · sd / √n
    assert detectable_effect(100, sd=1.0) == pytest.approx(0.2802, abs=1e-3)
    assert detectable_effect(400, sd=1.0) < detectable_effect(100, sd=1.0)
    text = power_statement(300, p0=0.05)
    assert text.startswith("300 paired items detect a rise of 6.") and "80% power" in text
    assert "difference of 0.28 nats" in power_statement(100, sd=1.0, unit=" nats")
    with pytest.raises(ValueError):
        detectable_effect(10)


def test_the_group_contrast_finds_an_effect_confined_to_the_group():
    from qeu_utils.experiment.stats import group_contrast

    rng = np.random.default_rng(3)
    first, second = _cells(rng, effect=0.0, seed_sd=0.05)
    in_k = np.arange(200) < 60
    first[:, in_k] += 0.8  # the effect lives in K
    row = group_contrast(first, second, in_k)
    assert row["ci_lo"] > 0 and row["n_items"] == 60 and row["n_rest"] == 140
    null = group_contrast(*_cells(rng, effect=0.3, seed_sd=0.05), in_k)
    assert null["ci_lo"] < 0 < null["ci_hi"]  # the same effect everywhere: no contrast
