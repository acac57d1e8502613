"""The claims of notebooks 05.1 (sample quality) and 05.2 (stability), asserted on the numbers
they record when executed in the smoke profile.

Like ``tests/test_notebook_claims.py``: each notebook is executed once through the cached
executor (a copy in ``build/smoke`` whose notebook, profile and gantut sources are unchanged
is reused). Only claims that hold at the smoke profile's size are asserted: the scale of the
metrics, the exact game, the bookkeeping behind each computed verdict. Which recipe wins a
race or which loss covers most modes needs the ``quick`` profile, and the notebooks compute
those sentences from their own numbers instead of stating them.
"""

import math
import re

import pytest
from smoke_records import records


# ------------------------------------------------------------------ 05_1_sample_quality
def test_05_1_fid_orders_the_sets_of_known_quality():
    r = records("05_1_sample_quality")
    assert r["fid_real"] < r["fid_noise_025"] < r["fid_noise_05"] < r["fid_uniform"]
    assert r["fid_floor_halves"] < r["fid_noise_05"]
    assert r["fid_collapse"] > r["fid_noise_05"] and r["fid_dropped"] > r["fid_real"]
    assert r["noise025_over_real"] == pytest.approx(r["fid_noise_025"] / r["fid_real"], abs=0.06)
    assert r["kid_real"] < r["kid_uniform"] / 100  # unbiased: real digits sit near its zero


def test_05_1_precision_and_recall_tell_dropped_modes_from_bad_samples():
    """Dropping digits 5-9 keeps precision and about halves recall; a collapse keeps
    precision above its recall, which is why precision alone certifies nothing."""
    r = records("05_1_sample_quality")
    assert r["precision_dropped"] > 0.8 * r["precision_real"]
    assert 0.3 * r["recall_real"] < r["recall_dropped"] < 0.7 * r["recall_real"]
    assert r["class_entropy_dropped"] == pytest.approx(math.log(5), abs=0.15)
    assert r["class_entropy_real"] == pytest.approx(math.log(10), abs=0.05)
    assert r["recall_collapse"] < 0.05 and r["class_entropy_collapse"] == 0
    assert r["precision_collapse"] > r["recall_collapse"]


def test_05_1_sample_verdict_uses_the_two_generators_own_spreads():
    """The bug this fixes: the gap was divided by a third model's spread."""
    r = records("05_1_sample_quality")
    gap = abs(r["sample_fid_mean_mlp"] - r["sample_fid_mean_dcgan"])
    own = max(r["sample_fid_std_mlp"], r["sample_fid_std_dcgan"])
    assert r["sample_gap_over_spread"] == pytest.approx(gap / own, rel=0.02, abs=0.06)
    apart = r["sample_verdict"].startswith("more than three")
    assert apart == (r["sample_gap_over_spread"] > 3)
    for key in ("n_mean_fell", "n_spread_shrank"):
        assert re.fullmatch(r"[0-3] of the 3( \(.+\))?", r[key]), r[key]


def test_05_1_race_reads_both_budgets_at_the_same_cpu_time():
    r = records("05_1_sample_quality")
    assert r["budget_half"] == pytest.approx(r["budget_full"] / 2)
    assert r["half_budget_offset"] < 0.25  # within a step or two of half the budget, in smoke
    assert r["step_cost_ratio"] > 1        # on a CPU, a DCGAN step costs more than an MLP step
    assert r["param_ratio_g"] == pytest.approx(2.7, abs=0.05)


@pytest.mark.parametrize("verdict, a, b", [("race_half", "mlp_half", "dcgan_half"),
                                           ("race_full", "mlp_full", "dcgan_full"),
                                           ("race_classic", "classic_half", "dcgan_half"),
                                           ("race_classic_mlp", "classic_half", "mlp_half")])
def test_05_1_race_verdicts_agree_with_the_means(verdict, a, b):
    """A recipe is called ahead only when each of its seeds beat each of the other's, so its
    mean FID is then lower too."""
    r = records("05_1_sample_quality")
    names = {"mlp": "seed-mlp", "classic": "dcgan-classic", "dcgan": "dcgan"}
    fa, fb = r[f"fid_{a}"], r[f"fid_{b}"]
    text = r[verdict]
    if text.startswith(names[a.split("_")[0]] + " ahead"):
        assert fa < fb
    elif text.startswith(names[b.split("_")[0]] + " ahead"):
        assert fb < fa
    else:
        assert text.startswith("no winner")
    assert r["classic_over_modern"] == pytest.approx(r["fid_classic_half"] / r["fid_dcgan_half"],
                                                     abs=0.06)


# ------------------------------------------------------------------ 05_2_stability
def test_05_2_simultaneous_steps_spiral_out_by_the_exact_factor():
    r = records("05_2_stability")
    steps, lr = r["xy_steps"], 0.1
    assert r["xy_sim_growth"] == pytest.approx((1 + lr**2) ** (steps / 2), abs=1e-3)
    assert r["xy_sim_algebra_error"] < 1e-10


def test_05_2_alternating_steps_orbit_and_never_reach_the_equilibrium():
    r = records("05_2_stability")
    assert r["xy_alt_drift"] < 1e-10           # x^2 + y^2 + lr*x*y is conserved
    assert r["xy_alt_min"] > 1.3               # it started at sqrt(2) and never came close to 0
    assert r["xy_alt_max"] < 1.6


def test_05_2_wgan_gp_costs_more_per_generator_step_and_the_counts_are_consistent():
    r = records("05_2_stability")
    assert r["wgan_cost_ratio"] > 2  # five critic steps with a second backward pass each
    assert 0 <= r["ring_max_modes"] <= 8
    assert (r["ring_runs_with_8"] == 0) == (r["ring_first_8"] == "never")
    assert (r["ring_max_modes"] == 8) == (r["ring_runs_with_8"] > 0)
    assert r["long_steps"] == 2 * r["toy_steps"]
    assert r["ring_missing_kind"] in ("mostly the first", "mostly the second")


def test_05_2_overfit_probe_records_shares_and_their_gap_per_config():
    r = records("05_2_stability")
    assert r["overfit_n_train"] == 4000
    assert r["overfit_epochs"] == pytest.approx(r["overfit_steps"] * 128 / 4000, abs=0.05)
    for key in ("plain", "translation", "r1"):
        train, held = r[f"overfit_train_real_{key}"], r[f"overfit_held_real_{key}"]
        assert 0 <= train <= 1 and 0 <= held <= 1 and 0 <= r[f"overfit_d_fake_{key}"] <= 1
        assert r[f"overfit_gap_{key}"] == pytest.approx(train - held, abs=2e-3)  # means of rounded
        assert r[f"overfit_fid_{key}"] > 0 and r[f"overfit_ms_per_step_{key}"] > 0


def test_05_2_remedies_were_really_on():
    """The translation runs shifted D's inputs by 2 pixels; only the R1 runs paid a penalty."""
    r = records("05_2_stability")
    n = r["overfit_n_seeds"]
    assert r["overfit_translate_seen"] == [2] * n
    assert len(r["overfit_r1_penalty"]) == n and min(r["overfit_r1_penalty"]) > 0
    assert r["overfit_plain_penalty"] == [0.0] * n


@pytest.mark.parametrize("key", ["translation", "r1"])
def test_05_2_overfit_verdicts_agree_with_the_numbers(key):
    r = records("05_2_stability")
    verdict, gap, plain = r[f"overfit_verdict_{key}"], r[f"overfit_gap_{key}"], r["overfit_gap_plain"]
    if abs(gap - plain) > 2e-3:  # the verdict compares unrounded means
        assert verdict.startswith("shrank") == (gap < plain)
    assert (r["overfit_grew"] == "grew") <= (r["overfit_gap_plain"] >= 0.05)
    assert ("won the game" in r[f"overfit_note_{key}"]) == (r[f"overfit_d_fake_{key}"] < 0.1)
