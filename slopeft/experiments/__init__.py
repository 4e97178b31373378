"""Experiments as files: grid expansion, run ids, the results store, the idempotent runner, Ray backend.

A grid (``configs/grids/NAME.yaml``) expands into :class:`~slopeft.experiments.grid.RunSpec` rows
with ids derived from a hash of their configuration; :mod:`~slopeft.experiments.runner` executes
them, each in its own subprocess (:mod:`~slopeft.experiments.worker`), and every finished run is
upserted into one SQLite store (:mod:`~slopeft.experiments.store`).
"""
