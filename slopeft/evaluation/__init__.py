"""Evaluation above training: a trained run loaded back and its predictions, the baselines, and the
workflows behind `slopeft baseline|score|evaluate|predict|submit`. The metrics themselves are in
:mod:`slopeft.metrics`."""
