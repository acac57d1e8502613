"""The claims of notebook 06 (the source's FAQ), asserted on the numbers it records when executed
in the smoke profile (the same cached execution as ``tests/test_notebooks.py``).

Q3's experiments at initialisation and its probes (D trained alone for a fixed 150 steps) are
the same in every profile, so their claims are asserted here; Q1's comparison and Q2's race
need the ``quick`` profile's longer runs and are stated in the notebook, not asserted.
(``tests/test_notebook_claims.py`` holds the older 06 tests: the sigmoid's derivative, the fall
through depth, the minimax gradient against D(G(z)), which fixes keep G's gradient.)
"""

import math

import pytest
from smoke_records import records


# ------------------------------------------------------------------ Q1
def test_06_q1_the_correlations_are_rank_correlations_over_enough_points():
    r = records("06_faq")
    assert r["q1_n_points"] > 2  # a rank correlation of two points is always +-1
    for key in ("q1_corr_vae_elbo_fid", "q1_corr_vae_elbo_fid_late", "q1_corr_gan_dloss_fid"):
        assert r[key] == "nan" or -1 <= r[key] <= 1


def test_06_q1_real_digits_are_crisp_and_cover_the_ten_classes():
    """The references the VAE's blur and the models' class entropies are read against."""
    r = records("06_faq")
    assert r["q1_grey_pixels_real"] < 0.25
    assert r["q1_class_entropy_real"] == pytest.approx(math.log(10), abs=0.05)


# ------------------------------------------------------------------ Q2
def test_06_q2_a_leaky_relu_unit_never_dies_a_bounded_output_stays_in_its_range():
    r = records("06_faq")
    assert r["q2_leakyrelu_dead_D"] == 0 and r["q2_leakyrelu_dead_G"] == 0
    assert r["q2_out_sigmoid_min_pixel"] >= 0  # a sigmoid output cannot draw the background, -1
    assert r["q2_out_tanh_outside"] == 0


def test_06_q2_the_race_records_one_ranking_of_all_four_activations():
    r = records("06_faq")
    for key in ("q2_fid_ranking", "q2_deriv_ranking"):
        assert sorted(r[key].split(", ")) == ["LeakyReLU", "ReLU", "sigmoid", "tanh"]
    assert r["n_race_seeds"] >= 2


# ------------------------------------------------------------------ Q3 (a) through depth
def test_06_q3_clipping_scales_every_layer_alike_layer_norm_helps_less_than_batch_norm():
    r = records("06_faq")
    assert r["q3_depth_clip_factor"] <= 1
    plain, ln, bn = (r[f"q3_depth_first_over_last_{k}"] for k in ("plain", "layernorm", "batchnorm"))
    assert plain < ln < bn


# ------------------------------------------------------------------ Q3 (b) through the loss
def test_06_q3_gradient_clipping_does_not_rescue_the_minimax_gradient():
    r = records("06_faq")
    assert r["q3_kept_clipped"] < 0.5


def test_06_q3_a_weight_clipped_critic_keeps_its_weights_in_range_and_gs_gradient_alive():
    r = records("06_faq")
    assert r["q3_critic_max_abs_weight"] <= 0.01 + 1e-9
    assert r["q3_kept_weightclip"] > 0.9
    assert r["q3_weightclip_growth"] > 10
