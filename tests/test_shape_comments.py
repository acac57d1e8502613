"""The ``# N x C x H x W`` comments in gantut/models.py say what a forward pass does.

Each model class's shape comments, read in source order, must list exactly the shapes a
batch takes through a default-sized model: the model's input, then the input and output of
every layer in the order they run, then the model's output (repeats in a row counted once).
A dimension is a number, a constructor argument (``ch``, ``z_dim``, ``hidden``), a multiple
of one (``2ch``) or a product (``(2ch*7*7)``).
"""

import inspect
import io
import re
import tokenize

import pytest
import torch

from gantut import models

N = 3
MODELS = {  # class -> the input of one forward pass
    models.MLPGenerator: torch.randn(N, 100),
    models.MLPDiscriminator: torch.randn(N, 1, 28, 28),
    models.DCGANGenerator: torch.randn(N, 100),
    models.DCGANDiscriminator: torch.randn(N, 1, 28, 28),
    models.VAE: torch.randn(N, 1, 28, 28),
}


def _dim(token: str, sizes: dict) -> int:
    value = 1
    for factor in token.strip("()").split("*"):
        coef, name = re.fullmatch(r"(\d*)([A-Za-z_]\w*)?", factor).groups()
        value *= int(coef or 1) * (sizes[name] if name else 1)
    return value


def _shape(text: str, sizes: dict) -> tuple[int, ...]:
    """``"N x 2ch x 7 x 7 (prose)"`` -> (N, 64, 7, 7): dimensions up to the first other word."""
    words, shape = text.split(), [N]
    while len(words) >= 3 and words[1] == "x" and re.fullmatch(r"[\w*()]+", words[2]):
        shape.append(_dim(words[2], sizes))
        words = words[2:]
    return tuple(shape)


def commented_shapes(source: str, sizes: dict) -> list[tuple[int, ...]]:
    """The shapes of the comments starting ``# N x`` / ``# N:`` in ``source``, in order."""
    shapes = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        text = tok.string.lstrip("# ").split(":")[0]
        if tok.type == tokenize.COMMENT and re.match(r"N( x |$| ->)", text):
            shapes += [_shape(part, sizes) for part in text.split("->")]
    return shapes


def traced_shapes(model, x) -> list[tuple[int, ...]]:
    seen = [tuple(x.shape)]
    for m in model.modules():
        if not list(m.children()):
            m.register_forward_hook(lambda m, inp, out: seen.extend(
                [tuple(inp[0].shape), tuple(out.shape)]))
    out = model(x)
    if isinstance(out, torch.Tensor):
        seen.append(tuple(out.shape))
    return seen


def _runs(shapes):
    return [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_shape_comments_match_a_forward_pass(cls):
    sizes = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    torch.manual_seed(0)
    traced = traced_shapes(cls(), MODELS[cls])
    assert _runs(commented_shapes(inspect.getsource(cls), sizes)) == _runs(traced)


def test_comment_parser():
    src = ("a = 1  # N x 2ch x 7 x 7: prose -> more\n"
           "b = 2  # N x (2ch*7*7) -> N x 1 -> N: one logit each\n"
           "c = 3  # N x z_dim (+ labels)\n"
           "d = 4  # Not a shape; nor is N-dimensional\n")
    assert commented_shapes(src, {"ch": 32, "z_dim": 100}) == [
        (N, 64, 7, 7), (N, 3136), (N, 1), (N,), (N, 100)]
