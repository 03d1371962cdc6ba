"""Models of the course. Each file here except ``registry`` is saved from a notebook's
``#@save`` cells; importing this package imports them all so that the registry is full."""
import importlib
import pkgutil

from .registry import (
    ModelCard,
    check_image_batch,
    get_model,
    list_models,
    model_card,
    register_model,
)

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "registry":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["get_model", "list_models", "register_model", "model_card", "ModelCard",
           "check_image_batch"]
