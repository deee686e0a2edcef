"""Example strategies, each with a config in ``configs/``."""
