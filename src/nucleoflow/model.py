"""A configurable 2D U-Net, and saving/loading it as plain tensors (safe to load)."""

import json
import pickle
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_path
from .device import prepare
from .errors import InputError, setting
from .heads import DEFAULT, HEADS, head_of
from .shipped import model_path


def _norm(kind, channels):
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; use batch, instance, group or none")


def _block(cin, cout, norm):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """`depth` poolings; widths base_width * 2**level; input sides must be multiples of 2**depth.
    head: the name of what its n_classes outputs mean (heads.py), kept in its config."""

    def __init__(self, in_channels=3, n_classes=3, depth=4, base_width=16, norm="batch", head=DEFAULT):
        super().__init__()
        self.config = dict(in_channels=in_channels, n_classes=n_classes, depth=depth, base_width=base_width, norm=norm, head=head)
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, widths[0], norm)])
        self.down.extend(_block(widths[i], widths[i + 1], norm) for i in range(depth))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
        self.up = nn.ModuleList(_block(2 * widths[i], widths[i], norm) for i in range(depth))
        self.head = nn.Conv2d(widths[0], n_classes, 1)
        self.pool = nn.MaxPool2d(2)

    @property
    def multiple(self):
        return 2 ** self.config["depth"]

    def forward(self, x):
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for level in reversed(range(len(self.up))):
            x = self.up[level](torch.cat([skips.pop(), self.upsample[level](x)], dim=1))
        return self.head(x)


def save_model(model, path, **metadata):
    """Write weights + architecture (tensors and plain values only) and a JSON card beside it."""
    payload = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "config": model.config, "metadata": metadata}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    card = Path(path).with_suffix(".json")
    with atomic_path(card) as tmp:
        tmp.write_text(json.dumps({"config": model.config, **metadata}, indent=2, default=str) + "\n")


def not_a_model(more=""):
    """What to do about a file that is not one of this pipeline's models (errors.setting names the setting)."""
    return f"Point {setting('segment.model')} at a model.pt written by the train rule{more}"


# What a model file may ask for: the architectures this pipeline trains (config/schema), the
# network input of reader.RegionSource.read (3 channels), a registered head and its outputs.
MODEL_LIMITS = {"depth": (1, 6), "base_width": (4, 128)}
NORMS = ("batch", "instance", "group", "none")
IN_CHANNELS = 3


def build_unet(model_cfg):
    """A fresh U-Net of the config's model section (depth, base_width, norm, head), with as many
    outputs as its head has."""
    return UNet(n_classes=head_of(model_cfg).n_outputs, **model_cfg)


def check_model_config(config, path):
    """Refuse a model file's architecture before anything is allocated for it, naming the file."""
    key = setting("segment.model")  # in the workflow, train.init_model is checked here too
    remedy = f"Point {key}{' (or train.init_model)' if key == 'segment.model' else ''} at a model.pt written by this pipeline's train rule"
    if not isinstance(config, dict):
        raise InputError(path, f"holds no model configuration (found {type(config).__name__})", remedy)
    unknown = set(config) - {"in_channels", "n_classes", "depth", "base_width", "norm", "head"}
    if unknown:
        raise InputError(path, f"asks for unknown model settings {sorted(unknown)}", remedy)
    for key, (low, high) in MODEL_LIMITS.items():
        value = config.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise InputError(path, f"asks for a U-Net with {key} = {value!r}, outside {low}-{high}", remedy)
    if config.get("norm") not in NORMS:
        raise InputError(path, f"asks for the unknown normalisation {config.get('norm')!r}", remedy)
    name = config.get("head", DEFAULT)
    if name not in HEADS:
        raise InputError(path, f"asks for the unknown head {name!r} (this version of nucleoflow knows {', '.join(HEADS)})", remedy)
    head = HEADS[name]
    for key, expected, what in (("in_channels", IN_CHANNELS, "input channels"), ("n_classes", head.n_outputs, "outputs")):
        if config.get(key, expected) != expected:
            raise InputError(
                path,
                f"is a network with {config.get(key)} {what}; this pipeline feeds {IN_CHANNELS} channels (gray or RGB) and its "
                f"{name} head reads {head.n_outputs} ({', '.join(head.outputs)})",
                remedy,
            )


def _not_ours(path, exc):
    what = f"is not a model saved by this pipeline ({type(exc).__name__}: {exc})"
    return InputError(path, what, not_a_model())


def load_model(path, device="cpu"):
    """Load a model saved by save_model (a path, or a shipped model's name); weights_only
    refuses pickled code in untrusted files; the architecture is checked (check_model_config)
    before it is built."""
    path = model_path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        remedy = f"Point {setting('segment.model')} at an existing model.pt, or a shipped model's name"
        raise InputError(path, f"cannot be read ({exc.strerror})", remedy) from exc
    if head[:2] not in (b"PK", b"\x80\x02"):  # torch.save's zip archive, or its legacy pickle
        raise InputError(
            path,
            f"is not a PyTorch model file (it starts with the bytes {head!r}, not a zip archive)",
            not_a_model(),
        )
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower() and "unsupported" not in str(exc).lower():
            raise InputError(path, f"is corrupt or not a model ({str(exc).splitlines()[0]})", not_a_model()) from exc
        raise InputError(
            path,
            "holds pickled objects other than tensors and was refused, as they could run code",
            not_a_model(", from a source you trust"),
        ) from exc
    except Exception as exc:
        raise _not_ours(path, exc) from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise InputError(path, "is not a model saved by this pipeline (no config and state_dict)", not_a_model())
    check_model_config(payload["config"], path)
    try:
        model = UNet(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise _not_ours(path, exc) from exc
    return prepare(model, device).eval(), payload.get("metadata", {})
