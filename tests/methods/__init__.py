"""Tests of the fine-tuning methods."""
