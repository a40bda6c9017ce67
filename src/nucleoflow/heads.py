"""The registered heads (head.py), by the name a model's config gives ("head")."""

from . import distance, interior_border
from .head import Head

HEADS = {head.name: head for head in (interior_border.HEAD, distance.HEAD)}
# What a model saved before heads existed predicts (its config names none).
DEFAULT = "interior_border"


def get_head(name: str) -> Head:
    """The head registered as `name`."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; use one of {', '.join(HEADS)}")
    return HEADS[name]


def head_of(config: dict) -> Head:
    """The head of a model config (UNet.config, or the config's model section)."""
    return get_head(config.get("head", DEFAULT))


def target_kinds() -> tuple:
    """Every head's train.targets values (the schema's enum)."""
    return tuple(kind for head in HEADS.values() for kind in head.target_kinds)
