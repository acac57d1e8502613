"""The claims the notebooks make, asserted on the numbers they record when executed in smoke.

Each notebook ``record``s its key numbers (:mod:`gantut.report`). These tests execute the
notebook through the same cached executor as ``tests/test_notebooks.py`` (a copy in
``build/smoke`` whose notebook, profile and gantut sources are unchanged is reused) and
assert the claims that already hold at the smoke profile's size; claims that need the
``quick`` profile's longer runs are stated in the notebooks and not asserted here.
"""

import json
import math

import pytest
from smoke_records import SMOKE_DIR, records

from gantut.execute import NOTEBOOKS, execute


# ------------------------------------------------------------------ 01_background
def test_01_exact_likelihood_models_sample_far_worse_than_real_digits():
    r = records("01_background")
    assert r["fid_ppca"] > 5 * r["fid_training_digits"]
    assert r["fid_independent_pixels"] > 5 * r["fid_training_digits"]
    assert r["ll_independent_pixels"] < 0


# ------------------------------------------------------------------ 02_core_concepts
def test_02_the_notebook_loop_is_gantrainer_bit_for_bit():
    """Same seed, same initial weights: the loop written out in 02 and GANTrainer end with
    identical weights, so the later notebooks' trainer is the algorithm 02 teaches."""
    r = records("02_core_concepts")
    assert r["loop_vs_trainer_steps"] > 0
    assert r["loop_vs_trainer_max_abs_diff"] == 0


def test_02_toy_gan_moves_samples_onto_the_ring():
    r = records("02_core_concepts")
    assert r["toy_hq_rate_end"] > r["toy_hq_rate_start"]
    assert r["toy_long_steps"] > r["loop_vs_trainer_steps"]  # the dashboard run went on


def test_02_the_training_animation_stays_light():
    """The ring GAN's animation (to_jshtml, frames embedded as PNG) must not weigh down the page."""
    out, _ = execute(NOTEBOOKS / "02_core_concepts.ipynb", SMOKE_DIR, "smoke", cell_timeout=300)
    nb = json.loads(out.read_text(encoding="utf-8"))
    html = ["".join(o["data"]["text/html"]) for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    animations = [h for h in html if "Animation" in h and "<img" in h]
    assert len(animations) == 1
    assert len(animations[0]) < 2_000_000


# ------------------------------------------------------------------ 03_math
def test_03_softmax_over_one_output_is_the_constant_1_with_zero_gradient():
    r = records("03_math")
    assert r["softmax_max_deviation_from_1"] == 0
    assert r["softmax_gradient_abs_sum"] == 0


def test_03_trained_discriminator_matches_d_star():
    r = records("03_math")
    assert r["dstar_mean_abs_error"] < 0.03
    assert r["v_trained_d"] <= r["v_optimal_d"] + 1e-6  # D* maximises V


def test_03_value_at_d_star_is_minus_log4_plus_2_jsd():
    r = records("03_math")
    assert r["jsd_identity_max_abs_diff"] < 1e-6
    # G maximises D's error: the best D's error rises to log 4 when p_g = p_data
    assert r["best_d_error_at_p_data"] == pytest.approx(math.log(4), abs=1e-6)
    assert r["best_d_error_far_generator"] < r["best_d_error_at_p_data"]


def test_03_the_best_discriminators_error_follows_the_jsd_not_the_row_order():
    """The prose: the error column dips where N(0.5, 1.2^2) is further in JSD than N(0, 1.5^2)."""
    r = records("03_math")
    assert r["jsd_n05_12"] > r["jsd_n00_15"]
    assert r["best_d_error_n05_12"] < r["best_d_error_n00_15"]
    assert r["best_d_error_far_generator"] < r["best_d_error_n05_12"] < r["best_d_error_at_p_data"]


def test_03_at_equilibrium_the_discriminator_is_one_half():
    r = records("03_math")
    assert r["equilibrium_d_mean_abs_from_half_start"] > 0.2
    assert r["equilibrium_d_mean_abs_from_half"] < 0.05
    assert r["equilibrium_jsd"] < 0.01


def test_03_non_saturating_gradient_beats_saturating_as_d_wins():
    r = records("03_math")
    assert r["logit_grad_nonsaturating_at_1e-3"] > 100 * r["logit_grad_minimax_at_1e-3"]
    assert r["far_d_of_fake"] < 0.05
    assert r["far_grad_ratio"] > 5


def test_03_reparameterisation_has_lower_variance_than_score_function():
    r = records("03_math")
    assert r["toy_variance_reparam"] < r["toy_variance_score"]
    assert r["vae_variance_reparam"] < r["vae_variance_score_baseline"] < r["vae_variance_score"]
    assert r["vae_variance_ratio"] > 100


def test_03_the_elbo_is_below_the_importance_weighted_bound():
    r = records("03_math")
    assert r["vae_test_iw_bound_1000"] > r["vae_test_elbo"]
    assert r["vae_elbo_gap"] > 0


# ------------------------------------------------------------------ 05_2_stability
def test_05_2_mode_coverage_tells_collapse_and_smearing_from_the_data():
    """The measure the stability comparison rests on: the data covers all 8 modes with
    high-quality samples; a collapsed generator covers 1; samples smeared over the circle
    are rarely high quality, so they cover almost nothing."""
    r = records("05_2_stability")
    assert r["check_modes_real"] == 8 and r["check_hq_real"] > 0.95
    assert r["check_modes_one_mode"] == 1 and r["check_hq_one_mode"] == 1
    assert r["check_hq_circle"] < 0.2 and r["check_modes_circle"] < 8


# ------------------------------------------------------------------ 04_1_dgn_code
def test_04_1_vae_elbo_rises_on_training_and_held_out_digits():
    r = records("04_1_dgn_code")
    assert r["vae_train_elbo_end"] > r["vae_train_elbo_start"] + 50
    assert r["vae_heldout_elbo"] > r["vae_heldout_elbo_init"] + 50
    assert r["vae_heldout_kl"] > 0  # the codes carry information about the digit
    assert r["vae_heldout_elbo"] == pytest.approx(r["vae_heldout_recon"] - r["vae_heldout_kl"], abs=1e-3)


# ------------------------------------------------------------------ 06_faq
def test_06_q2_a_sigmoid_passes_at_most_a_quarter_of_the_gradient():
    assert records("06_faq")["sigmoid_max_derivative"] == pytest.approx(0.25, abs=1e-6)


def test_06_q3_gradients_vanish_through_depth_clipping_keeps_it_batch_norm_cures_it():
    r = records("06_faq")
    assert r["q3_depth_first_over_last_plain"] < 1e-6
    assert r["q3_depth_first_over_last_clipped"] == pytest.approx(r["q3_depth_first_over_last_plain"], rel=1e-4)
    assert r["q3_depth_first_over_last_batchnorm"] > 1e3 * r["q3_depth_first_over_last_plain"]


def test_06_q3_minimax_gradient_collapses_under_a_strong_d_and_clipping_never_raises_it():
    r = records("06_faq")
    assert r["q3_d_fake_end"] < 0.05  # D rejects G's samples
    # the minimax gradient is the non-saturating one times about D(G(z)) (-sigma(f) vs sigma(f) - 1)
    assert r["q3_minimax_over_nonsaturating_end"] < 0.05
    assert 0.5 < r["q3_minimax_over_nonsaturating_end"] / r["q3_d_fake_end"] < 2
    assert r["q3_kept_minimax"] < 0.3
    assert r["q3_clip_largest_gain"] <= 1 + 1e-6
    assert r["q3_kept_clipped"] <= r["q3_kept_minimax"] + 1e-6


def test_06_q3_non_saturating_wgan_gp_and_spectral_norm_keep_g_s_gradient_layer_norm_does_not():
    r = records("06_faq")
    assert r["q3_kept_nonsaturating"] > 0.9
    assert r["q3_kept_wgangp"] > 0.5
    assert r["q3_kept_spectral"] > 2 * r["q3_kept_minimax"]
    assert r["q3_kept_layernorm"] < 0.1
