"""The claims of notebooks 04.1 (the VAE) and 04.2 (the source's GAN), asserted on the numbers
they record when executed in the smoke profile.

Like ``tests/test_notebook_claims.py``: the notebook is executed through the cached executor
into ``build/smoke`` (reused while the notebook, the profile and gantut are unchanged), and
only the claims that already hold at the smoke profile's size are asserted here. The
ablation ladder's verdicts need the ``quick`` profile's runs; the notebook computes them
and states them from its own numbers.
"""

import math

import pytest
from smoke_records import records

from gantut.profiles import get_profile
from gantut.recipes import RECIPES


# ------------------------------------------------------------------ 04_1_dgn_code
def test_04_1_the_elbo_written_on_the_page_is_the_package_s():
    """Same weights, same batch, same ε: the page's elbo() and VAE.elbo agree exactly."""
    assert records("04_1_dgn_code")["elbo_page_vs_package_max_diff"] == 0


def test_04_1_training_puts_information_into_the_codes():
    r = records("04_1_dgn_code")
    assert r["vae_heldout_kl_init"] < 1  # an untrained encoder: codes close to the prior
    assert r["vae_heldout_kl"] > 5 * r["vae_heldout_kl_init"]
    assert r["vae_heldout_elbo"] == pytest.approx(r["vae_heldout_recon"] - r["vae_heldout_kl"], abs=1e-3)


def test_04_1_the_overfitting_gap_is_measured_with_its_error():
    r = records("04_1_dgn_code")
    assert r["vae_overfit_gap_se"] > 0 and math.isfinite(r["vae_overfit_gap"])
    steps, batch = get_profile("smoke").vae_steps, RECIPES["vae"].settings["batch_size"]
    assert r["vae_epochs"] == pytest.approx(steps * batch / r["n_train"])  # cited in the verdict
    assert r["n_test"] > 0 and r["n_train"] > r["n_test"]


def test_04_1_within_one_run_the_held_out_elbo_moves_with_fid():
    """The summary's "within one run it moved with FID": rank correlation below 0 (FID falls
    where the ELBO rises), over every evaluation point of the run."""
    r = records("04_1_dgn_code")
    assert r["vae_n_evals"] >= 5
    assert r["vae_elbo_fid_spearman"] < 0


def test_04_1_a_2d_latent_carries_fewer_nats_and_costs_elbo():
    r = records("04_1_dgn_code")
    assert r["vae2_heldout_kl"] < r["vae_heldout_kl"]
    assert r["vae2_heldout_elbo"] < r["vae_heldout_elbo"]


# ------------------------------------------------------------------ 04_2_gan_code
def test_04_2_the_sequential_port_is_gantut_s_mlp_gan():
    """The two nn.Sequential written beside the TF1 code, with gantut's weights loaded, give
    exactly the outputs of MLPGenerator and MLPDiscriminator."""
    r = records("04_2_gan_code")
    assert r["port_g_max_diff"] == 0
    assert r["port_d_max_diff"] == 0


def test_04_2_every_rung_of_the_ladder_sees_the_same_images():
    r = records("04_2_gan_code")
    assert r["steps_batch_64"] * 64 == r["ladder_images"]
    assert r["ladder_images"] % 128 == 0
    assert r["n_seeds"] >= 2
    for i in range(5):
        assert r[f"rung{i}_fid"] > 0 and 0 <= r[f"rung{i}_recall"] <= 1


def test_04_2_noise_lengths_straight_line_midpoint_leaves_the_shell_slerp_does_not():
    r = records("04_2_gan_code")
    assert r["noise_norm"] == pytest.approx(10, abs=0.3)
    assert r["line_midpoint_norm"] == pytest.approx(math.sqrt(50), abs=0.3)
    assert r["slerp_midpoint_norm"] == pytest.approx(10, abs=0.3)


def test_04_2_truncation_shrinks_the_variety_of_samples():
    r = records("04_2_gan_code")
    spreads = [r[f"pixel_spread_psi_{k}"] for k in (100, 70, 40, 0)]
    assert spreads == sorted(spreads, reverse=True)
    assert spreads[-1] == pytest.approx(0, abs=1e-6)  # ψ = 0: every sample is G(0)
