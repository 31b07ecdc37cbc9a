"""CaloGAN-format calorimeter showers: the HDF5 reader and writer, and training arrays.

The CaloGAN layout (one HDF5 file per particle type):

    energy    (N, 1)      incident energy, GeV
    layer_0   (N, 3, 96)  deposits in the pre-sampler strips (3 rows of 160 mm x 96 columns of 5 mm)
    layer_1   (N, 12, 12) deposits in the middle layer (40 mm x 40 mm cells)
    layer_2   (N, 12, 6)  deposits in the back layer (40 mm x 80 mm cells)
    overflow  (N, 3)      optional: energy outside each layer's cells

The public CaloGAN files store the voxel deposits in MeV and the incident energy in GeV.
`read_calogan` converts the voxels to GeV with `unit_scale` (GeV per file unit, default 1e-3)
so that a `ShowerSet` is in GeV throughout; `write_calogan` applies the inverse.

Events are read in chunks and, for data-parallel training, rank `r` of `size` takes events
r, r + size, r + 2 size, ... (the tutorial's sharding). Only that rank's events are ever read:
each chunk is an HDF5 strided hyperslab selection, never a full read followed by slicing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from ..errors import DataError, UserError
from ..fileio import atomic_path

LAYER_KEYS: tuple[str, ...] = ("layer_0", "layer_1", "layer_2")
LAYER_SHAPES: tuple[tuple[int, int], ...] = ((3, 96), (12, 12), (12, 6))
N_VOXELS: int = sum(h * w for h, w in LAYER_SHAPES)  # 504
# Cell sizes in mm, (rows, columns), of the CaloGAN geometry (a 480 mm x 480 mm face).
CELL_SIZES_MM: tuple[tuple[float, float], ...] = ((160.0, 5.0), (40.0, 40.0), (40.0, 80.0))
DEFAULT_UNIT_SCALE: float = 1e-3  # GeV per voxel file unit (the CaloGAN files are in MeV)
NAN_POLICIES: tuple[str, ...] = ("error", "drop", "zero")
DEFAULT_CHUNK_EVENTS: int = 16384


@dataclass
class ShowerSet:
    """A batch of showers, all energies in GeV.

    energy:   (N, 1) float, incident energy, GeV.
    layers:   tuple of three arrays (N, 3, 96), (N, 12, 12), (N, 12, 6), deposits, GeV.
    overflow: (N, 3) float, GeV, or None when the file has none.
    info:     read-time bookkeeping (events in the file, this rank's share, NaN counts).
    """

    energy: np.ndarray
    layers: tuple[np.ndarray, np.ndarray, np.ndarray]
    overflow: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.energy.shape[0])

    def __post_init__(self) -> None:
        check_shower_arrays(self.energy, self.layers, self.overflow)

    def voxels(self) -> np.ndarray:
        """All 504 voxels per shower, (N, 504), in the CaloGAN order (layer 0, 1, 2, row-major)."""
        n = len(self)
        return np.concatenate([layer.reshape(n, -1) for layer in self.layers], axis=1)

    def layer_energies(self) -> np.ndarray:
        """Per-layer deposited energy, (N, 3), GeV."""
        return np.stack([layer.sum(axis=(1, 2)) for layer in self.layers], axis=1)

    def with_readout_threshold(self, threshold_gev: float) -> ShowerSet:
        """The showers with every voxel below `threshold_gev` read as 0 (a detector's cell
        readout threshold; the synthetic photons have 0.5 MeV = 5e-4 GeV). A flow leaves small
        deposits where the detector reads nothing: this applies the same cut to its samples."""
        if threshold_gev < 0:
            raise ValueError(f"threshold must be >= 0 GeV, got {threshold_gev}")
        layers = tuple(np.where(layer < threshold_gev, 0.0, layer).astype(layer.dtype)
                       for layer in self.layers)
        return ShowerSet(energy=self.energy, layers=layers, overflow=self.overflow,
                         info={**self.info, "readout_threshold_gev": threshold_gev})

    def subset(self, index: np.ndarray | slice) -> ShowerSet:
        """The showers selected by `index` (a slice, integer or boolean array)."""
        return ShowerSet(
            energy=self.energy[index],
            layers=tuple(layer[index] for layer in self.layers),
            overflow=None if self.overflow is None else self.overflow[index],
            info=dict(self.info),
        )


def check_shower_arrays(energy: np.ndarray, layers: tuple[np.ndarray, ...],
                        overflow: np.ndarray | None) -> None:
    """DataError naming the array and the expected shape if the arrays are not a shower batch."""
    if energy.ndim != 2 or energy.shape[1] != 1:
        raise DataError(f"energy has shape {energy.shape}, expected (N, 1)")
    n = energy.shape[0]
    if len(layers) != len(LAYER_SHAPES):
        raise DataError(f"expected {len(LAYER_SHAPES)} layers, got {len(layers)}")
    for key, layer, shape in zip(LAYER_KEYS, layers, LAYER_SHAPES, strict=True):
        if layer.shape != (n, *shape):
            raise DataError(f"{key} has shape {layer.shape}, expected ({n}, {shape[0]}, "
                            f"{shape[1]})")
    if overflow is not None and overflow.shape != (n, 3):
        raise DataError(f"overflow has shape {overflow.shape}, expected ({n}, 3)")


def _open_h5(path: str | os.PathLike) -> h5py.File:
    if not os.path.exists(path):
        raise DataError(f"no such file: {path}")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty (0 bytes), expected a CaloGAN HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc})") from None


def _check_dataset(fh: h5py.File, key: str, tail: tuple[int, ...], path: Any) -> h5py.Dataset:
    expected = "(N, " + ", ".join(str(t) for t in tail) + ")"
    if key not in fh:
        raise DataError(f"{path}: missing key '{key}', expected shape {expected}; "
                        f"keys present: {sorted(fh.keys())}")
    ds = fh[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{path}: '{key}' is a group, expected a dataset of shape {expected}")
    if ds.ndim != 1 + len(tail) or tuple(ds.shape[1:]) != tail:
        raise DataError(f"{path}: '{key}' has shape {ds.shape}, expected {expected}")
    if ds.dtype.kind != "f":
        raise DataError(f"{path}: '{key}' has dtype {ds.dtype}, expected a floating type")
    return ds


def read_calogan(path: str | os.PathLike, unit_scale: float = DEFAULT_UNIT_SCALE, rank: int = 0,
                 size: int = 1, max_events: int | None = None, nan_policy: str = "error",
                 chunk_events: int = DEFAULT_CHUNK_EVENTS) -> ShowerSet:
    """Read (this rank's share of) a CaloGAN HDF5 file into a ShowerSet in GeV.

    unit_scale: GeV per unit of the voxel and overflow datasets (1e-3 for MeV files, 1.0 for GeV);
        the incident `energy` is always read as GeV.
    rank, size: data-parallel shard; this rank reads events rank, rank + size, ... only.
    max_events: use only the file's first `max_events` events (before sharding), so the union of
        all ranks' shards is the same set a single process reads.
    nan_policy: what to do with NaN voxels: "error" (default, DataError with the count), "drop"
        (drop those showers) or "zero" (set those voxels to 0). The counts are in `info`.
        NaN, infinite or non-positive incident energies, and negative voxels, are always errors.
    chunk_events: events per HDF5 read (bounds memory for the conversion to float32).
    """
    if nan_policy not in NAN_POLICIES:
        raise UserError(f"nan_policy must be one of {NAN_POLICIES}, got '{nan_policy}'")
    if not (size >= 1 and 0 <= rank < size):
        raise UserError(f"rank must be in [0, size) with size >= 1, got rank={rank} size={size}")
    if not (unit_scale > 0 and np.isfinite(unit_scale)):
        raise UserError(f"unit_scale must be a positive number (GeV per file unit), got "
                        f"{unit_scale}")
    with _open_h5(path) as fh:
        e_ds = fh.get("energy")
        if isinstance(e_ds, h5py.Dataset) and e_ds.ndim == 1:
            energy_ds = e_ds  # some converters drop the trailing axis; (N,) is unambiguous
            if energy_ds.dtype.kind != "f":
                raise DataError(f"{path}: 'energy' has dtype {energy_ds.dtype}, expected a "
                                "floating type")
        else:
            energy_ds = _check_dataset(fh, "energy", (1,), path)
        layer_ds = [_check_dataset(fh, k, s, path) for k, s in zip(LAYER_KEYS, LAYER_SHAPES,
                                                                   strict=True)]
        overflow_ds = _check_dataset(fh, "overflow", (3,), path) if "overflow" in fh else None
        n_file = energy_ds.shape[0]
        for ds in [*layer_ds, *([overflow_ds] if overflow_ds is not None else [])]:
            if ds.shape[0] != n_file:
                raise DataError(f"{path}: '{ds.name.lstrip('/')}' has {ds.shape[0]} events but "
                                f"'energy' has {n_file}")
        if n_file == 0:
            raise DataError(f"{path}: the file holds 0 events")
        n_use = n_file if max_events is None else min(n_file, int(max_events))
        if n_use <= rank:
            raise DataError(f"{path}: {n_use} events cannot be sharded to rank {rank} of {size}")

        energies, layers, overflows = [], [[], [], []], []
        # Chunk boundaries are multiples of `size`, so each chunk starts at this rank's offset.
        step = max(1, chunk_events // size) * size
        for lo in range(0, n_use, step):
            sel = slice(lo + rank, min(lo + step, n_use), size)
            if sel.start >= sel.stop:
                continue
            e = np.asarray(energy_ds[sel], dtype=np.float64).reshape(-1, 1)
            energies.append(e)
            for i, ds in enumerate(layer_ds):
                layers[i].append(np.asarray(ds[sel], dtype=np.float32))
            if overflow_ds is not None:
                overflows.append(np.asarray(overflow_ds[sel], dtype=np.float32))

    energy = np.concatenate(energies).astype(np.float32)
    layer_arrays = [np.concatenate(parts) for parts in layers]
    overflow = np.concatenate(overflows) if overflow_ds is not None else None

    bad_e = ~np.isfinite(energy[:, 0]) | (energy[:, 0] <= 0)
    if bad_e.any():
        raise DataError(f"{path}: 'energy' has {int(bad_e.sum())} NaN, infinite or non-positive "
                        f"incident energies (first at shard row {int(np.argmax(bad_e))})")

    info: dict[str, Any] = {"path": str(path), "n_events_file": int(n_file),
                            "n_events_used": int(n_use), "rank": rank, "size": size,
                            "unit_scale": unit_scale, "nan_policy": nan_policy}
    nan_masks = [np.isnan(layer) for layer in layer_arrays]
    n_nan_voxels = {k: int(m.sum()) for k, m in zip(LAYER_KEYS, nan_masks, strict=True)}
    nan_event = np.zeros(len(energy), dtype=bool)
    for m in nan_masks:
        nan_event |= m.reshape(len(energy), -1).any(axis=1)
    info["n_nan_voxels"] = n_nan_voxels
    info["n_nan_events"] = int(nan_event.sum())
    if nan_event.any():
        if nan_policy == "error":
            where = ", ".join(f"{k}: {v}" for k, v in n_nan_voxels.items() if v)
            raise DataError(f"{path}: {int(nan_event.sum())} showers have NaN voxels ({where}); "
                            "pass nan_policy='drop' or 'zero' to handle them")
        if nan_policy == "zero":
            for layer, m in zip(layer_arrays, nan_masks, strict=True):
                layer[m] = 0.0
    for key, layer in zip(LAYER_KEYS, layer_arrays, strict=True):
        finite = layer[np.isfinite(layer)]
        if np.isinf(layer).any():
            raise DataError(f"{path}: '{key}' has {int(np.isinf(layer).sum())} infinite voxels")
        if (finite < 0).any():
            raise DataError(f"{path}: '{key}' has {int((finite < 0).sum())} negative voxels "
                            f"(min {float(finite.min()):.4g}); deposits must be >= 0")
    if overflow is not None and not np.isfinite(overflow).all():
        raise DataError(f"{path}: 'overflow' has {int((~np.isfinite(overflow)).sum())} "
                        "non-finite values")

    layer_arrays = [layer * np.float32(unit_scale) for layer in layer_arrays]
    if overflow is not None:
        overflow = overflow * np.float32(unit_scale)
    showers = ShowerSet(energy=energy, layers=tuple(layer_arrays), overflow=overflow, info=info)
    if nan_policy == "drop" and nan_event.any():
        showers = showers.subset(~nan_event)
        showers.info["n_dropped"] = int(nan_event.sum())
    return showers


def write_calogan(path: str | os.PathLike, showers: ShowerSet,
                  unit_scale: float = DEFAULT_UNIT_SCALE, compression: str | None = "gzip") -> None:
    """Write `showers` (GeV) in the CaloGAN layout, voxels divided by `unit_scale`, atomically.

    Float32 datasets chunked by events, as the public files; `energy` stays in GeV. Refuses to
    overwrite the file a ShowerSet was read from (`info["path"]`).
    """
    if showers.info.get("path") and os.path.exists(path) and os.path.samefile(
            path, showers.info["path"]):
        raise UserError(f"refusing to write over the input file {path}")
    n = len(showers)
    chunk = (min(max(n, 1), 1024),)
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset("energy", data=showers.energy.astype(np.float32),
                          chunks=chunk + (1,) if n else None, compression=compression)
        for key, layer in zip(LAYER_KEYS, showers.layers, strict=True):
            data = (layer / unit_scale).astype(np.float32)
            fh.create_dataset(key, data=data, chunks=chunk + layer.shape[1:] if n else None,
                              compression=compression)
        if showers.overflow is not None:
            fh.create_dataset("overflow", data=(showers.overflow / unit_scale).astype(np.float32),
                              compression=compression)
        fh.attrs["voxel_unit_gev"] = unit_scale
        fh.attrs["energy_unit"] = "GeV"
        for key, value in showers.info.items():
            if key.startswith("generator_") and isinstance(value, (str, int, float)):
                fh.attrs[key] = value
