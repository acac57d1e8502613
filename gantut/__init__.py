"""gantut: the machinery behind the notebooks of a tutorial on deep generative models and GANs.

Each module does one job; notebooks call a few well-named functions from them:

- :mod:`gantut.profiles` -- ``smoke`` / ``quick`` / ``full`` run sizes
- :mod:`gantut.utils` -- seeding, device, threads (:func:`setup`), eval mode in a block
- :mod:`gantut.data` -- MNIST as tensors (offline fallback) and 2-D toy distributions
- :mod:`gantut.models` -- the source's MLP GAN (corrected), DCGAN, VAE, with shape comments
- :mod:`gantut.losses` -- minimax, non-saturating, least-squares, hinge, WGAN-GP
- :mod:`gantut.train` -- the GAN and VAE training loops, callbacks, checkpoints, NaN guard
- :mod:`gantut.flow` -- flow matching (loss, Euler sampler, small U-Net), what came after GANs
- :mod:`gantut.checkpoint` -- atomic writes, ``weights_only`` loads
- :mod:`gantut.recipes` -- named training recipes (models + settings), built by ``make_trainer``;
  how they were tuned is a page of the book
- :mod:`gantut.metrics` -- FID/KID, precision/recall, class histogram, per-class accuracy, modes
- :mod:`gantut.theory` -- the maths of notebook 03 as numbers (D*, JSD, gradient estimators)
- :mod:`gantut.diagnostics` -- probes inside networks (dead units, gradients by layer and of G)
- :mod:`gantut.experiments` -- one configuration over several seeds, as one table
- :mod:`gantut.plots` -- image grids, training curves, 2-D toy plots
- :mod:`gantut.widgets` -- latent explorer, class picker, live training dashboard
- :mod:`gantut.report` -- ``record`` the numbers a notebook measures, for the tests
- :mod:`gantut.execute` -- the notebook executor (cached, shows progress) of ``make book``/``test``
- :mod:`gantut.bench` -- benchmarks that print figures (``python -m gantut.bench``)
- :mod:`gantut.cli`, :mod:`gantut.distributed` -- ``python -m gantut train|sample``, torchrun
"""

from .data import load_mnist
from .profiles import PROFILES, get_profile
from .train import GANTrainer, TrainingDiverged, VAETrainer
from .utils import setup

__all__ = ["PROFILES", "GANTrainer", "TrainingDiverged", "VAETrainer", "get_profile",
           "load_mnist", "setup"]
__version__ = "0.1.0"
