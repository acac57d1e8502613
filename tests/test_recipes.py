"""Named recipes: each one builds, trains a few steps, and means the same thing everywhere."""

import math

import pytest
import torch

from gantut.cli import STEPS_FIELD
from gantut.profiles import get_profile
from gantut.recipes import RECIPES, get_recipe, make_trainer


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_trains(name, small_mnist):
    x, y = small_mnist
    trainer = make_trainer(name, "cpu")
    trainer.fit(x, y if RECIPES[name].conditional else None, steps=2, progress=False)
    losses = trainer.history.df().iloc[-1]
    assert trainer.step == 2 and all(math.isfinite(v) for v in losses if isinstance(v, float))
    # the CLI knows how many steps a profile gives this recipe
    assert getattr(get_profile("smoke"), STEPS_FIELD[name]) > 0


def test_overrides_and_unknown_name():
    trainer = make_trainer("dcgan", "cpu", lr_g=1e-4)
    assert trainer.config["lr_g"] == 1e-4 and trainer.config["lr_d"] == 2e-3
    with pytest.raises(ValueError, match="unknown recipe 'dcgann': choose one of .*dcgan"):
        get_recipe("dcgann")


def test_dcgan_recipes_differ_only_in_training():
    """`dcgan` and `dcgan-classic` have the same G; D differs in its normalisation only."""
    torch.manual_seed(0)
    classic = get_recipe("dcgan-classic").build()
    torch.manual_seed(0)
    tuned = get_recipe("dcgan").build()
    assert all(torch.equal(a, b) for a, b in zip(classic[0].state_dict().values(),
                                                 tuned[0].state_dict().values(), strict=True))
    n_params = [sum(p.numel() for p in d.parameters() if p.dim() > 1) for d in (classic[1], tuned[1])]
    assert n_params[0] == n_params[1]
    assert any("parametrizations" in k for k in tuned[1].state_dict())  # spectral norm
    assert not any("parametrizations" in k for k in classic[1].state_dict())
