"""PEFT methods, one registered module each. Importing this package registers them all."""

from slopeft.methods import (  # noqa: F401  (registration)
    adalora,
    bitfit,
    full,
    ia3,
    increlora,
    lora,
    mola,
    prompts,
    qalora,
    qlora,
)
from slopeft.methods.base import METHODS, Method, MethodContext

__all__ = ["METHODS", "Method", "MethodContext"]
