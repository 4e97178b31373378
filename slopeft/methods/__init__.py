"""PEFT methods, one registered module each. Importing this package registers them all."""

from slopeft.methods import bitfit, full, lora  # noqa: F401  (registration)
from slopeft.methods.base import METHODS, Method, MethodContext

__all__ = ["METHODS", "Method", "MethodContext"]
