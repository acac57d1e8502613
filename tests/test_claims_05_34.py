"""The claims of notebooks 05.3 (losses) and 05.4 (architectures), asserted on the numbers
they record when executed in the smoke profile (the same cached executions as
``tests/test_notebooks.py``). Claims that need the ``quick`` profile's longer runs are stated
in the notebooks and not asserted here."""

import math

import pytest
from smoke_records import records


# ------------------------------------------------------------------ 05_3_losses
def test_05_3_the_losses_on_the_page_compute_what_gantut_losses_computes():
    r = records("05_3_losses")
    assert r["loss_code_max_abs_diff"] == 0
    assert r["gradient_penalty_abs_diff"] == 0


def test_05_3_minimax_saturates_where_d_rejects_the_sample_the_others_do_not():
    r = records("05_3_losses")
    sig = 1 / (1 + math.exp(6))  # sigma(-6)
    assert r["dg_minimax_at_minus6"] == pytest.approx(-sig, rel=1e-4)
    assert r["dg_nonsaturating_at_minus6"] == pytest.approx(sig - 1, rel=1e-4)
    assert r["dg_lsgan_at_minus6"] == pytest.approx(-7, rel=1e-5)


# ------------------------------------------------------------------ 05_4_architectures
def test_05_4_the_layer_size_formulas_match_pytorch():
    r = records("05_4_architectures")
    assert r["conv_size_formula_cases"] > 100
    assert r["conv_size_formula_mismatches"] == 0


def test_05_4_the_label_inputs_written_on_the_page_are_the_models():
    r = records("05_4_architectures")
    assert r["cgan_g_by_hand_max_diff"] == 0
    assert r["cgan_d_by_hand_max_diff"] == 0


def test_05_4_every_seed_and_model_was_measured():
    r = records("05_4_architectures")
    for name in ("dcgan", "cgan"):
        assert math.isfinite(r[f"fid_{name}"]) and r[f"fid_{name}"] > 0
        assert 0 <= r[f"class_entropy_{name}"] <= math.log(10) + 1e-6
    assert 0 <= r["cgan_worst_digit_accuracy"] <= r["cgan_accuracy"] <= 1
    assert r["classifier_accuracy"] > 0.9  # the yardstick the per-digit accuracy is read against
