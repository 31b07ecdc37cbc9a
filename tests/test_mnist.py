"""MNIST readers on small files in the real formats, the image preprocessing and its exact
inverse, bits/dim with the preprocessing Jacobian, and the sklearn digits stand-in."""

import gzip

import numpy as np
import pytest

from ffjord_kit.errors import DataError
from ffjord_kit.images.digits import DIGITS_LEVELS, load_digits
from ffjord_kit.images.mnist import (
    IDX_FILES,
    bits_per_dim,
    labels_from_condition,
    load_mnist,
    log_abs_jacobian,
    logit_transform,
    postprocess_images,
    preprocess_images,
    read_idx,
    write_idx,
)


def fake_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_plain_and_gzipped(tmp_path, gz):
    data = fake_mnist()
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / (stem + (".gz" if gz else "")), data[key])
    if gz:  # really gzip: the header is not visible uncompressed
        assert (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()[:2] == b"\x1f\x8b"
    images = load_mnist(tmp_path)
    np.testing.assert_array_equal(images.x_train, data["x_train"])
    np.testing.assert_array_equal(images.y_test, data["y_test"])
    assert images.x_test.shape == (5, 28, 28)


def test_idx_header_layout(tmp_path):
    labels = np.array([3, 1, 4], np.uint8)
    path = write_idx(tmp_path / "l.idx", labels)
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])
    np.testing.assert_array_equal(read_idx(path), labels)


def test_npz_preferred_and_checked(tmp_path):
    data = fake_mnist()
    np.savez(tmp_path / "mnist.npz", **data)
    assert load_mnist(tmp_path).source.endswith("mnist.npz")
    np.savez(tmp_path / "mnist.npz", **{k: v for k, v in data.items() if k != "y_test"})
    with pytest.raises(DataError, match="missing key 'y_test'"):
        load_mnist(tmp_path)


def test_missing_files_say_where_to_put_what(tmp_path):
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path)
    msg = str(err.value)
    assert "mnist.npz" in msg and "train-images-idx3-ubyte" in msg and str(tmp_path) in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_corrupt_idx_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(DataError, match="magic number"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(DataError, match=r"shape \(5,\)"):
        read_idx(tmp_path / "short")
    with gzip.open(tmp_path / "trunc.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2]))
    (tmp_path / "trunc.gz").write_bytes((tmp_path / "trunc.gz").read_bytes()[:-6])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "trunc.gz")


def test_preprocessing_has_exact_inverse():
    data = fake_mnist(n_train=50)
    x, c = preprocess_images(data["x_train"], data["y_train"], seed=1)
    assert x.shape == (50, 784) and x.dtype == np.float32 and c.shape == (50, 1)
    np.testing.assert_array_equal(postprocess_images(x, (28, 28)), data["x_train"])
    np.testing.assert_array_equal(labels_from_condition(c), data["y_train"])
    assert np.abs(x).max() < 14.0  # logit with alpha 1e-6 is bounded by ~13.8


def test_logit_jacobian_matches_finite_differences():
    y = np.random.default_rng(0).uniform(0.001, 0.999, (4, 6))
    h = 1e-7
    numeric = np.log((logit_transform(y + h) - logit_transform(y - h)) / (2 * h)).sum(axis=1)
    np.testing.assert_allclose(log_abs_jacobian(y), numeric, rtol=1e-6)


def test_bits_per_dim_of_uniform_pixels_is_log2_levels():
    # If y is uniform on [0, 1)^D then p(z) = 1 / |dz/dy|, and every pixel value is equally
    # likely: exactly log2(L) bits per dimension.
    z = logit_transform(np.random.default_rng(1).uniform(size=(7, 784)))
    from ffjord_kit.images.mnist import inverse_logit_transform
    log_pz = -log_abs_jacobian(inverse_logit_transform(z))
    np.testing.assert_allclose(bits_per_dim(log_pz, z, 256), 8.0, atol=1e-9)
    np.testing.assert_allclose(bits_per_dim(log_pz, z, 17), np.log2(17), atol=1e-9)


def test_digits_offline_stand_in():
    images = load_digits()
    assert images.x_train.shape[1:] == (8, 8) and images.x_train.max() == DIGITS_LEVELS - 1
    assert len(images.x_train) + len(images.x_test) == 1797
    x, c = preprocess_images(images.x_test, images.y_test, levels=DIGITS_LEVELS)
    np.testing.assert_array_equal(postprocess_images(x, (8, 8), DIGITS_LEVELS), images.x_test)
