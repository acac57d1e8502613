import pytest

from gantut.profiles import PROFILES, get_profile


def test_known_profiles():
    assert set(PROFILES) == {"smoke", "quick", "full"}
    assert get_profile("smoke").gan_steps < get_profile("quick").gan_steps < get_profile("full").gan_steps


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, quick, full"):
        get_profile("fast")


def test_env_var_chooses_the_default(monkeypatch):
    monkeypatch.setenv("GANTUT_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.delenv("GANTUT_PROFILE")
    assert get_profile().name == "quick"


def test_overrides():
    p = get_profile("quick", gan_steps=7)
    assert p.gan_steps == 7 and p.name == "quick"
    assert get_profile("quick").gan_steps != 7


def test_printed_profile_is_one_short_line():
    """``print(p)`` in a notebook shows this line, not the dataclass repr cut off at the page edge."""
    assert str(get_profile("quick")) == (
        "quick profile: GAN 6,000 steps, DCGAN 1,500, VAE 3,000, toy 2,500, "
        "2,000 samples per metric, 3 seeds")
    assert str(get_profile("quick", gan_steps=7)).startswith("quick profile: GAN 7 steps,")
    assert repr(get_profile("smoke")).startswith("Profile(name='smoke', gan_steps=60")
