"""slopeft: parameter-efficient fine-tuning for Slovene, measured on SloBench."""

__version__ = "0.1.0"
