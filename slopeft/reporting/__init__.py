"""Turning results into tables, plots and reports. Imports nothing from training."""
