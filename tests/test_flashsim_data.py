"""FlashSim schemas, preprocessing inverses, HDF5 layout, chunked sharded reader, bad input."""

import h5py
import numpy as np
import pytest

from ffjord_kit.errors import ConfigError, DataError
from ffjord_kit.flashsim.preprocessing import (
    ModelTransform,
    drop_nonfinite_rows,
    reco_to_targets,
    targets_to_reco,
    wrap_phi,
)
from ffjord_kit.flashsim.reader import ChunkedReader, file_lengths, read_rows, write_flashsim_h5
from ffjord_kit.flashsim.schemas import JETS, MUONS, get_schema
from ffjord_kit.flashsim.synthetic import make_synthetic_dataset, synthetic_rows


def test_schema_layout_matches_reference():
    assert (JETS.n_conditions, JETS.n_targets) == (14, 17)
    assert (MUONS.n_conditions, MUONS.n_targets) == (30, 22)
    assert JETS.condition_names[8:] == ["GenJet_eta", "GenJet_mass", "GenJet_phi", "GenJet_pt",
                                        "GenJet_partonFlavour", "GenJet_hadronFlavour"]
    assert JETS.target_names[12] == "Jet_ptRatio" and JETS.target_names[-1] == "Jet_jetId"
    assert MUONS.target_names[:3] == ["Muon_etaMinusGen", "Muon_phiMinusGen", "Muon_ptRatio"]
    with pytest.raises(ConfigError, match="jets"):
        get_schema("electrons")


@pytest.mark.parametrize("schema", [JETS, MUONS])
def test_preprocessing_inverses(schema):
    rng = np.random.default_rng(0)
    rows = synthetic_rows(schema.kind, 5000, rng)
    assert rows.shape == (5000, schema.n_columns) and np.all(np.isfinite(rows))
    cond, targ = rows[:, :schema.n_conditions], rows[:, schema.n_conditions:]
    # Extraction: columns -> physical reco -> columns is exact.
    reco = targets_to_reco(schema, cond, targ)
    np.testing.assert_allclose(reco_to_targets(schema, cond, reco), targ, rtol=1e-5, atol=1e-6)
    # Model space: squash + dequantise + standardise, then the inverse recovers the columns
    # (integers rounded back, booleans thresholded).
    tr = ModelTransform.fit(schema, rows)
    model = tr.targets(targ, rng)
    assert abs(model.mean()) < 0.05 and abs(model.std() - 1) < 0.05
    np.testing.assert_allclose(tr.inverse_targets(model), targ, rtol=2e-5, atol=2e-5)
    discrete = [j for j, c in enumerate(schema.targets) if c.kind != "real"]
    assert discrete and np.all(tr.inverse_targets(model)[:, discrete] == targ[:, discrete])
    # Dequantisation really spreads the integers (the flow never sees a delta function).
    raw = model[:, discrete] * tr.target_std[discrete] + tr.target_mean[discrete]
    assert np.all(np.abs(raw - np.round(raw)).max(axis=0) > 0.1)
    tr2 = ModelTransform.from_dict(tr.to_dict(), schema)
    np.testing.assert_array_equal(tr2.conditions(cond), tr.conditions(cond))


def test_phi_wrapping_and_clips():
    np.testing.assert_allclose(wrap_phi(np.array([3.5, -3.5, 0.1])),
                               [3.5 - 2 * np.pi, 2 * np.pi - 3.5, 0.1])
    cond = np.zeros((3, 14))
    cond[:, JETS.condition_index("GenJet_pt")] = 100.0
    cond[:, JETS.condition_index("GenJet_mass")] = 10.0
    cond[:, JETS.condition_index("GenJet_phi")] = 3.0
    reco = {c.reco_name or c.name: np.ones(3) for c in JETS.targets}
    reco["Jet_pt"] = np.array([50.0, 100.0, 1000.0])
    reco["Jet_phi"] = np.array([-3.0, 3.1, 2.9])
    reco["Jet_btagDeepB"] = np.array([-5.0, 0.5, 0.2])
    t = reco_to_targets(JETS, cond, reco)
    np.testing.assert_allclose(t[:, JETS.target_index("Jet_ptRatio")], [0.5, 1.0, 3.0])
    np.testing.assert_allclose(t[:, JETS.target_index("Jet_phiMinusGen")],
                               [2 * np.pi - 6.0, 0.1, -0.1], atol=1e-6)
    assert t[0, JETS.target_index("Jet_btagDeepB")] == np.float32(-0.1)


def test_h5_layout_reader_shards_and_bad_input(tmp_path):
    rng = np.random.default_rng(1)
    paths = make_synthetic_dataset("jets", 5000, 3, tmp_path / "d", n_val=100, n_test=100,
                                   seed=1)["train"]
    with h5py.File(paths[0], "r") as f:
        assert f["data"].dtype == np.float32 and f["data"].shape[1] == 31
        assert list(f.attrs["columns"])[11] == "GenJet_pt"
    all_rows = read_rows(paths, JETS)
    assert all_rows.shape == (5000, 31)
    # Two ranks: disjoint shards that together hold every row exactly once, per epoch.
    seen = []
    for rank in range(2):
        r = ChunkedReader(paths, JETS, chunk_rows=300, shuffle_chunks=3, rank=rank, size=2)
        seen.append(np.concatenate(list(r.iter_chunks(epoch=4))))
    both = np.concatenate(seen)
    assert len(both) == 5000
    key = lambda a: np.lexsort(a.T[::-1])
    np.testing.assert_array_equal(both[key(both)], all_rows[key(all_rows)])
    # Batches mix rows across files and differ between epochs; batch sizes are exact.
    r = ChunkedReader(paths, JETS, chunk_rows=500, shuffle_chunks=4)
    ident = lambda rows: (rows[:, 14:], rows[:, :14])
    b0 = list(r.iter_batches(256, ident, epoch=0))
    b1 = list(r.iter_batches(256, ident, epoch=1))
    assert all(len(x) == 256 for x, _ in b0) and len(b0) == 5000 // 256
    assert not np.array_equal(b0[0][0], b1[0][0])
    # NaN rows are dropped and counted.
    bad = synthetic_rows("jets", 1000, rng)
    bad[[3, 10], 5] = np.nan
    bad[7, 20] = np.inf
    write_flashsim_h5(tmp_path / "bad.h5", bad, JETS)
    r = ChunkedReader([tmp_path / "bad.h5"], JETS, chunk_rows=128)
    assert sum(len(c) for c in r.iter_chunks()) == 997 and r.dropped_rows == 3
    assert drop_nonfinite_rows(bad)[1] == 3
    # Wrong column count, a missing file, no `data`: one clear message each.
    with h5py.File(tmp_path / "wide.h5", "w") as f:
        f["data"] = np.zeros((10, 32), np.float32)
    with h5py.File(tmp_path / "nodata.h5", "w") as f:
        f["x"] = np.zeros((10, 31), np.float32)
    with pytest.raises(DataError, match=r"\[N, 31\].*got \[10, 32\]"):
        file_lengths([tmp_path / "wide.h5"], JETS)
    with pytest.raises(DataError, match="missing.h5 does not exist"):
        ChunkedReader([paths[0], tmp_path / "missing.h5"], JETS)
    with pytest.raises(DataError, match="no dataset 'data'"):
        read_rows([tmp_path / "nodata.h5"], JETS)
    with pytest.raises(DataError, match=r"\[N, 31\]"):
        write_flashsim_h5(tmp_path / "never.h5", np.zeros((4, 30)), JETS)
    assert not (tmp_path / "never.h5").exists()
