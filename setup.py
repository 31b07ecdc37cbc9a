"""ffjord_kit: normalizing flows (FFJORD and spline flows) for particle physics."""

from setuptools import find_packages, setup

# Pinned to the versions measured together (see README "Versions"). TFP 0.25 needs the Keras 2
# API, hence tf-keras; tensorflow-cpu keeps laptop and CI installs small.
INSTALL_REQUIRES = [
    "tensorflow-cpu==2.21.0; platform_machine!='aarch64'",
    "tf-keras==2.21.0",
    "tensorflow-probability==0.25.0",
    "h5py==3.14.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "matplotlib==3.11.2",
    # Bundled 8x8 digits (offline image data) and the classifier used for the AUC metric.
    "scikit-learn==1.9.1",
]

setup(
    name="ffjord_kit",
    version="0.1.0",
    description="Continuous (FFJORD) and spline normalizing flows for particle physics",
    packages=find_packages(include=["ffjord_kit", "ffjord_kit.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "dev": ["pytest==9.2.0", "ruff==0.17.6"],
        # On CUDA machines: pip install -e '.[gpu]' brings the CUDA build of the same TF.
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
        # Side-by-side benchmark against nflows (PyTorch CPU build).
        "bench": ["torch==2.13.0", "nflows==0.14"],
    },
)
