"""The tidy frame as a file: ``--tidy FILE.csv`` or ``FILE.parquet``, and back.

CSV cells are made formula-free (:func:`reports.safe.csv_cell`: a text cell starting with ``= + - @`` gets a
leading ``'``), as every CSV file the report writes; numbers are left alone."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .safe import csv_cell

__all__ = ["write_tidy", "read_tidy", "csv_safe"]

_DATES = ("date", "run_started")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell and column name made formula-free (:func:`csv_cell`)."""
    out = frame.copy()
    out.columns = [csv_cell(str(c)) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(csv_cell)
    return out


def write_tidy(frame: pd.DataFrame, path: os.PathLike | str) -> Path:
    """Write the tidy frame as ``.csv`` or ``.parquet`` (chosen by the file's suffix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"--tidy expects a file ending in .csv or .parquet, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        csv_safe(frame).to_csv(path, index=False)
    else:
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise ValueError(f"writing parquet needs pyarrow (pip install pyarrow): "
                             f"{type(exc).__name__}: {exc}") from None
    return path


def read_tidy(path: os.PathLike | str) -> pd.DataFrame:
    """Read a frame written by :func:`write_tidy` back with its types (dates, strings)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    from estibench.schema import TEXT_COLUMNS

    frame = pd.read_csv(path, dtype={c: "str" for c in TEXT_COLUMNS})
    for col in _DATES:
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    return frame
