"""KLM data: user-file readers (HDF5 group / compound, npz, npy), bad-input messages, the
seeded 80/10/10 split and the synthetic timing model's physics."""

import h5py
import numpy as np
import pytest

from ffjord_kit.errors import ConfigError, DataError
from ffjord_kit.klm.reader import read_table, write_hdf5
from ffjord_kit.klm.schema import ALL_NAMES, CONTEXT_NAMES, KLMTable
from ffjord_kit.klm.split import split_indices, split_table
from ffjord_kit.klm.synthetic import (
    C_CM_PER_NS,
    TimingModel,
    draw_context,
    draw_photon_times,
    generate_table,
)


@pytest.fixture(scope="module")
def table():
    return generate_table(2000, seed=3)


def _columns(t: KLMTable) -> dict:
    return {n: t.column(n) for n in ALL_NAMES}


def test_hdf5_round_trip_in_the_user_layout(tmp_path, table):
    path = write_hdf5(tmp_path / "photons.h5", table, {"synthetic": True})
    with h5py.File(path) as fh:  # the real layout: one 1-D dataset per column, with units
        assert sorted(fh.keys()) == sorted(ALL_NAMES)
        assert fh["photon_time"].attrs["unit"] == "ns" and fh["photon_time"].ndim == 1
    back = read_table(path)
    np.testing.assert_array_equal(back.context, table.context)
    np.testing.assert_array_equal(back.time, table.time)


def test_compound_dataset_group_key_npz_npy_and_rename(tmp_path, table):
    cols = _columns(table)
    rec = np.zeros(len(table), dtype=[(n, "f8") for n in ALL_NAMES])
    for n in ALL_NAMES:
        rec[n] = cols[n]
    with h5py.File(tmp_path / "c.h5", "w") as fh:
        fh.create_dataset("events/photons", data=rec)
        grp = fh.create_group("cols")
        for n in ALL_NAMES:
            grp.create_dataset("t_gamma" if n == "photon_time" else n, data=cols[n])
    np.savez(tmp_path / "c.npz", **cols)
    np.save(tmp_path / "c.npy", rec)
    for t in (read_table(tmp_path / "c.h5", key="events/photons"),
              read_table(tmp_path / "c.h5", key="cols", rename={"photon_time": "t_gamma"}),
              read_table(tmp_path / "c.npz"), read_table(tmp_path / "c.npy")):
        np.testing.assert_array_equal(t.time, table.time)
        np.testing.assert_array_equal(t.context, table.context)


def test_missing_column_nan_rows_and_bad_files_give_clear_errors(tmp_path, table):
    cols = _columns(table)
    no_theta = {k: v for k, v in cols.items() if k != "theta"}
    np.savez(tmp_path / "missing.npz", **no_theta)
    with pytest.raises(DataError, match=r"missing column\(s\) \['theta'\]"):
        read_table(tmp_path / "missing.npz")
    bad = dict(cols, photon_time=cols["photon_time"].copy())
    bad["photon_time"][[5, 9]] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(DataError, match=r"'photon_time' has 2 non-finite.*first at row 5"):
        read_table(tmp_path / "nan.npz")
    dropped = read_table(tmp_path / "nan.npz", drop_nonfinite=True)
    assert len(dropped) == len(table) - 2 and np.isfinite(dropped.time).all()
    neg = dict(cols, mu_momentum=-cols["mu_momentum"])
    np.savez(tmp_path / "neg.npz", **neg)
    with pytest.raises(DataError, match="mu_momentum' must be > 0"):
        read_table(tmp_path / "neg.npz")
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "k.h5", "w") as fh:
        fh["x"] = np.zeros(3)
    with pytest.raises(DataError, match="no HDF5 key 'photons'"):
        read_table(tmp_path / "k.h5", key="photons")
    with pytest.raises(DataError, match="plain dataset"):
        read_table(tmp_path / "k.h5", key="x")
    (tmp_path / "t.csv").write_text("a\n")
    with pytest.raises(DataError, match="unknown file type"):
        read_table(tmp_path / "t.csv")
    with pytest.raises(DataError, match="unknown canonical"):
        read_table(tmp_path / "k.h5", rename={"time": "t"})


def test_split_is_disjoint_complete_80_10_10_and_seeded():
    a = split_indices(1000, seed=5)
    assert [len(a[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(1000))
    b = split_indices(1000, seed=5)
    c = split_indices(1000, seed=6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    assert not np.array_equal(a["train"][:50], np.sort(a["train"][:50]))  # shuffled
    with pytest.raises(ConfigError):
        split_indices(1000, seed=1, fractions=(0.5, 0.5, 0.5))


def test_split_table_keeps_rows_aligned(table):
    parts = split_table(table, seed=1)
    t = parts["val"]
    idx = split_indices(len(table), 1)["val"]
    np.testing.assert_array_equal(t.time, table.time[idx])
    np.testing.assert_array_equal(t.context, table.context[idx])


def test_synthetic_generator_is_seeded_and_physical():
    a, b = generate_table(5000, seed=9), generate_table(5000, seed=9)
    np.testing.assert_array_equal(a.time, b.time)
    assert not np.array_equal(a.time, generate_table(5000, seed=10).time)
    m = TimingModel()
    z, t_mu, theta, p = a.context.T
    assert (a.time > t_mu - 5 * m.transit_jitter_ns).all() and (a.time > 0).all()
    # Muon time of flight from the gun: at least D0 / c, more for slow muons.
    assert (t_mu >= m.gun_distance_cm / C_CM_PER_NS).all()
    assert list(CONTEXT_NAMES) == ["hit_z", "mu_hit_time", "theta", "mu_momentum"]


def test_light_propagation_delay_follows_the_effective_speed():
    """Median photon delay after the muon falls with z (sensor at +L/2) at about 1/v_eff."""
    rng = np.random.default_rng(0)
    m = TimingModel(far_end_reflectivity=0.0)  # direct light only: a clean slope
    ctx = draw_context(40000, rng, m)
    delay = draw_photon_times(ctx, rng, m) - ctx[:, 1]
    near, far = ctx[:, 0] > 60, ctx[:, 0] < -60
    dz = ctx[near, 0].mean() - ctx[far, 0].mean()
    slope = (np.median(delay[far]) - np.median(delay[near])) / dz  # ns per cm
    # effective speed c cos(alpha) / n with cos(alpha) in [0.77, 1]: 15.2 to 19.0 cm/ns
    assert 1 / 19.5 < slope < 1 / 14.5


def test_far_end_reflection_adds_a_late_component():
    rng = np.random.default_rng(1)
    ctx = np.tile([[80.0, 2.0, 1.57, 2.0]], (20000, 1))  # near the sensor
    with_r = draw_photon_times(ctx, rng, TimingModel(far_end_reflectivity=0.9))
    without = draw_photon_times(ctx, rng, TimingModel(far_end_reflectivity=0.0))
    late = 2.0 + 2 * 200 / 19.0  # muon + at least the ~2L reflected path at top speed
    assert np.mean(with_r > late) > 0.15 and np.mean(without > late) < 0.02
