"""Hyperparameter search: YAML spaces, the Ray Tune trainable, the runner with resume, export."""
