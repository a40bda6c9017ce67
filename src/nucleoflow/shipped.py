"""Models that ship inside the package, found by name wherever the package is installed."""

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT = "dsb2018_unet"


def shipped_models():
    """Names of the models shipped with the package (folders holding a model.pt)."""
    return sorted(p.parent.name for p in MODELS.glob("*/model.pt"))


def model_path(name_or_path):
    """A shipped model's name (e.g. "dsb2018_unet") or a path to a model.pt -> that model.pt's path.

    A name is looked up only when no file of that name exists, so a user's own file is never
    shadowed; any other value is returned as a path (the workflow may still have to build it,
    and loading it names the file when it is missing).
    """
    value = str(name_or_path or DEFAULT)
    if not Path(value).exists() and value in shipped_models():
        return MODELS / value / "model.pt"
    return Path(value)
