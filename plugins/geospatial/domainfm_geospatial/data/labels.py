"""Label rasters checked across a dataset: every value a class, the nodata value or
``ignore_index``; the class count given (``num_classes``) or found."""

from __future__ import annotations

import numpy as np

from domainfm.errors import DataError

from domainfm_geospatial.io import RasterInfo


class LabelCheck:
    """Accumulates the label values of a dataset's files, failing on the first file that holds
    a value outside ``0..num_classes-1`` (its nodata value and ``ignore_index`` are unlabelled).

    ``nodata``: the value that marks unlabelled pixels when given; else each file's own nodata
    tag, else ``default_nodata``.
    """

    def __init__(self, num_classes: int | None, ignore_index: int, *, nodata: int | None = None,
                 default_nodata: int | None = 255) -> None:
        self.expected, self.ignore_index = num_classes, ignore_index
        self.override, self.default = nodata, default_nodata
        self.top = -1
        self.nodata: int | None = None  # of the first file

    def file_nodata(self, info: RasterInfo) -> int | None:
        if self.override is not None:
            value = self.override
        elif info.nodata is not None and np.isfinite(info.nodata):
            value = int(info.nodata)
        else:
            value = self.default
        if self.nodata is None:
            self.nodata = value
        return value

    def add_nodata(self, info: RasterInfo) -> None:
        """A file whose header alone was checked."""
        self.file_nodata(info)

    def add(self, labels: np.ndarray, info: RasterInfo) -> None:
        nodata = self.file_nodata(info)
        values = np.unique(labels[np.isfinite(labels)] if labels.dtype.kind == "f" else labels)
        values = values[(values != self.ignore_index) & ((values != nodata) if nodata is not None else True)]
        if self.expected is not None:
            bad = values[(values < 0) | (values >= self.expected)]
            if bad.size:
                unlabelled = ", ".join(str(v) for v in (nodata, self.ignore_index) if v is not None)
                raise DataError(f"{info.path}: label values {bad[:8].astype(int).tolist()} are "
                                f"outside 0..{self.expected - 1} (num_classes={self.expected}; "
                                f"{unlabelled} mark unlabelled pixels)")
        elif values.size and values.min() < 0:
            raise DataError(f"{info.path}: label values {values[values < 0][:8].astype(int).tolist()} "
                            f"are negative; classes are 0, 1, ... ({nodata} marks unlabelled pixels)")
        if values.size:
            self.top = max(self.top, int(values.max()))

    def num_classes(self) -> int:
        """The given class count, else the largest class found + 1 (at least 2)."""
        return self.expected if self.expected is not None else max(2, self.top + 1)
