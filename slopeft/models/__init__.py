"""Model sources (Hub, local, pip-installable offline models, tiny test models) and task heads."""
