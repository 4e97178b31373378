"""Model sources (Hub, local, pip-installable offline models, tiny test models) and task heads."""

from slopeft.models.sources import MODELS, ModelInfo, ModelSource, load_tokenizer, model_path, resolve_model

__all__ = ["MODELS", "ModelInfo", "ModelSource", "load_tokenizer", "model_path", "resolve_model"]
