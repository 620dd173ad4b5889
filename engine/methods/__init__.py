"""CAM methods: the registry (torch-free) and one formula module per family."""

from engine.methods.registry import (
    DEFAULT_METHOD,
    METHODS,
    MethodInputs,
    MethodSpec,
    get_method,
    method_names,
)

__all__ = ["DEFAULT_METHOD", "METHODS", "MethodInputs", "MethodSpec", "get_method", "method_names"]
