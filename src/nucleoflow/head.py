"""What the network predicts and how its outputs become nuclei: one Head per kind of output.

Everything that depends on the meaning of the network's output channels lives in a Head (as in
stardist's Config2D or nnU-Net's LabelManager): how many there are, the activation applied to
them (exported with the network), the training targets and loss, which of the activated maps
give the seeds, the foreground and the relief that the seeded watershed (watershed.py) grows into
instance labels, training's fixed validation thresholds and tune's grids.
A model file names its head in its config ("head"; heads.py registers them), so whoever loads a
model knows how to read it. Adding a head is one module plus one line in heads.py.

Test-time augmentation (infer.py) averages the maps of the 8 rotations and flips of a window
after turning each back: right for maps of per-pixel scalars, which every head here predicts. A
head of vector outputs (flows) would also have to turn its vectors back.

Heads never import torch: activation and loss use the methods of the tensors they are given,
so a head module imports where labelling runs without torch (the tune and evaluate rules' envs).
Nor do they import the watershed: training uses a head's targets and loss, labelling its maps,
so an edit of the watershed reruns labelling and the choice of training's best epoch, never the
training epochs themselves (the workflow's train and best_epoch rules).
"""

import numpy as np

# The thresholds every head is labelled at (watershed.instances) (options.Thresholds), searched by tune in two
# stages (thresholds, then size filters at the best thresholds): 42 + 16 points instead of 672,
# as the size filters barely interact with the thresholds.
THRESHOLD_GRID = {"seed_threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "foreground_threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
SIZE_GRID = {"min_seed_area": [2, 4, 8, 16], "min_area": [5, 10, 20, 40]}


class Head:
    """The interface of a head; subclasses set the attributes and implement the methods."""

    name: str
    outputs: tuple  # one name per output channel, in order (the bioimage.io card's channel names)
    description: str  # what activation() returns, for model cards
    target_kinds: tuple  # the train.targets this head learns from
    # Training's own thresholds for the validation score that picks the best epoch (validation.py):
    # part of how a training run is defined, so never the tuned or default options.
    validation: dict
    threshold_grid: dict = THRESHOLD_GRID
    size_grid: dict = SIZE_GRID

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    def training_problems(self, targets: str, border_weight: float) -> list[str]:
        """Messages, naming the settings, for train.targets and train.border_weight this head
        cannot learn from (the workflow checks them before any job; train refuses them)."""
        if targets not in self.target_kinds:
            return [f"train.targets {targets!r} are not targets of the {self.name} head (model.head): use {' or '.join(self.target_kinds)}"]
        return []

    def activation(self, logits):
        """torch (N, n_outputs, H, W) network outputs -> the maps that are labelled (a tensor)."""
        raise NotImplementedError

    def targets(self, labels: np.ndarray, kind: str) -> np.ndarray:
        """uint8 (H, W) training target of an instance label image. Integer targets: crops zoom
        them by nearest neighbour and flip them with the image (crops.py)."""
        raise NotImplementedError

    def loss(self, logits, target, border_weight: float = 1.0):
        """Scalar training loss (a tensor) of torch logits (N, n_outputs, H, W) against integer
        targets (N, H, W)."""
        raise NotImplementedError

    def watershed_inputs(self, maps: np.ndarray, seed_threshold: float, foreground_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(relief, seeds, foreground) of numpy activated maps (n_outputs, H, W): the float map
        the seeds grow down, the boolean seed pixels and the boolean foreground they grow over
        (watershed.instances labels them)."""
        raise NotImplementedError
