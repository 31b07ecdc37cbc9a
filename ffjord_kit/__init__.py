"""ffjord_kit: continuous (FFJORD) and spline normalizing flows for particle physics.

Importing the package selects the Keras 2 API (tf_keras), which TensorFlow Probability needs,
before TensorFlow is imported anywhere.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
