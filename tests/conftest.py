"""Shared test settings: quiet TensorFlow, Keras 2 API, single-threaded determinism."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
