"""Read and write KLM timing tables in the user-facing file layouts.

Accepted layouts (column names are the canonical ones in `schema.ALL_NAMES`, or mapped from
the user's names with `rename={"canonical": "user_name"}`):

- HDF5 (`.h5`, `.hdf5`): a group (root by default, or `key`) holding one 1-D dataset per
  column; or `key` naming one compound (structured) dataset with one field per column.
- NumPy `.npz`: one 1-D array per column.
- NumPy `.npy`: one structured array with one field per column.

`write_hdf5` writes the first layout (one dataset per column, unit attributes), atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import atomic_path
from .schema import ALL_NAMES, TARGET_NAME, UNITS, KLMTable, table_from_columns

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def _fields_to_columns(names: list[str], get, rename: dict[str, str], source: str
                       ) -> dict[str, np.ndarray]:
    columns = {}
    missing = []
    for canonical in ALL_NAMES:
        user = rename.get(canonical, canonical)
        if user in names:
            columns[canonical] = np.asarray(get(user))
        else:
            missing.append(user if user == canonical else f"{user} (for {canonical})")
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {sorted(names)}")
    return columns


def _read_hdf5(path: Path, key: str | None, rename: dict[str, str]) -> dict[str, np.ndarray]:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with fh:
        obj = fh if key in (None, "", "/") else fh.get(key)
        if obj is None:
            raise DataError(f"{path}: no HDF5 key {key!r}; top-level keys {sorted(fh.keys())}")
        if isinstance(obj, h5py.Dataset):
            if obj.dtype.names is None:
                raise DataError(f"{path}:{key} is a plain dataset of shape {obj.shape}; need a "
                                f"group of 1-D column datasets or a compound dataset with "
                                f"fields {list(ALL_NAMES)}")
            data = obj[()]
            return _fields_to_columns(list(obj.dtype.names), lambda n: data[n], rename,
                                      f"{path}:{key}")
        names = [n for n in obj.keys() if isinstance(obj[n], h5py.Dataset)]
        return _fields_to_columns(names, lambda n: obj[n][()], rename, f"{path}:{key or '/'}")


def read_table(path: str | os.PathLike, key: str | None = None,
               rename: dict[str, str] | None = None, drop_nonfinite: bool = False) -> KLMTable:
    """Read a KLM table from HDF5/.npz/.npy (layouts in the module docstring).

    Rows with NaN/inf raise DataError unless `drop_nonfinite`, which drops them. Returns a
    `KLMTable` with context (N, 4) and photon time (N,) in float64.
    """
    path = Path(path)
    rename = dict(rename or {})
    unknown = sorted(set(rename) - set(ALL_NAMES))
    if unknown:
        raise DataError(f"rename: unknown canonical column(s) {unknown}; known {list(ALL_NAMES)}")
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        columns = _read_hdf5(path, key, rename)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            columns = _fields_to_columns(list(npz.files), lambda n: npz[n], rename, str(path))
    elif suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.dtype.names is None:
            raise DataError(f"{path}: a .npy input must be a structured array with fields "
                            f"{list(ALL_NAMES)}, got dtype {arr.dtype} shape {arr.shape}")
        columns = _fields_to_columns(list(arr.dtype.names), lambda n: arr[n], rename, str(path))
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; use .h5/.hdf5, .npz or .npy")
    if drop_nonfinite:
        finite = np.ones(len(np.ravel(columns[TARGET_NAME])), dtype=bool)
        for a in columns.values():
            a = np.asarray(a, dtype=np.float64).ravel()
            if a.shape != finite.shape:
                break  # ragged: table_from_columns names the problem
            finite &= np.isfinite(a)
        else:
            columns = {n: np.asarray(a, dtype=np.float64).ravel()[finite]
                       for n, a in columns.items()}
    return table_from_columns(columns, source=str(path))


def write_hdf5(path: str | os.PathLike, table: KLMTable, attrs: dict | None = None) -> Path:
    """Write `table` as one 1-D float64 dataset per canonical column (with a `unit`
    attribute) at the file root, plus file attributes `attrs`; atomic."""
    import h5py

    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as fh:
            for name in ALL_NAMES:
                ds = fh.create_dataset(name, data=table.column(name), compression="gzip",
                                       compression_opts=1, shuffle=True)
                ds.attrs["unit"] = UNITS[name]
            for k, v in (attrs or {}).items():
                fh.attrs[k] = v
    return path
