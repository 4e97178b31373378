"""Model catalogue and sources (Hub, local, pip-installable offline models, tiny test models) and task heads."""

from slopeft.models.catalogue import MODELS, ModelInfo
from slopeft.models.sources import ModelSource, load_tokenizer, model_path, resolve_model

__all__ = ["MODELS", "ModelInfo", "ModelSource", "load_tokenizer", "model_path", "resolve_model"]
