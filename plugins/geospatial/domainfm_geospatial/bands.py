"""HLS band names, Prithvi normalisation statistics and band selection.

Prithvi was pretrained on six Harmonized Landsat Sentinel-2 bands (surface reflectance x 10000)
in a fixed order; users pick bands by these names or by index into their files.
"""

from __future__ import annotations

from collections.abc import Sequence

from domainfm.errors import DomainfmError

HLS_BANDS: tuple[str, ...] = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
"""The six bands Prithvi EO-1.0 and EO-2.0 were pretrained on, in checkpoint order."""

EO1_MEAN = (775.0, 1081.0, 1229.0, 2497.0, 2204.0, 1611.0)
EO1_STD = (1282.0, 1270.0, 1399.0, 1368.0, 1292.0, 1155.0)
EO2_MEAN = (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
EO2_STD = (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)


def select_bands(
    bands: Sequence[str | int], file_bands: Sequence[str]
) -> tuple[list[int], list[str]]:
    """Resolve band names or 0-based indices to (indices into the file, names).

    Names are looked up in ``file_bands`` (the names of the bands stored in the files, in order);
    an integer is an index into the file and keeps the name ``file_bands[i]`` when known.
    """
    indices, names = [], []
    for band in bands:
        if isinstance(band, int) and not isinstance(band, bool):
            if not 0 <= band < len(file_bands):
                raise DomainfmError(
                    f"band index {band} is out of range: the files have {len(file_bands)} bands "
                    f"({', '.join(file_bands)}); indices are 0-based"
                )
            indices.append(band)
            names.append(file_bands[band])
        elif isinstance(band, str):
            if band not in file_bands:
                raise DomainfmError(
                    f"unknown band {band!r}: the files' bands are {', '.join(file_bands)} "
                    "(set `file_bands` to name the bands stored in your files)"
                )
            indices.append(file_bands.index(band))
            names.append(band)
        else:
            raise DomainfmError(f"a band must be a name or a 0-based index, got {band!r}")
    if len(set(indices)) != len(indices):
        raise DomainfmError(f"bands {list(bands)} select the same file band twice")
    return indices, names


def normalisation(
    names: Sequence[str], mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float], list[float]]:
    """Per-band mean/std: the config's, else Prithvi EO-2.0's statistics looked up by band name."""
    if mean is None or std is None:
        missing = [n for n in names if n not in HLS_BANDS]
        if missing:
            raise DomainfmError(
                f"no default normalisation for bands {missing}: Prithvi's statistics cover "
                f"{', '.join(HLS_BANDS)}; give `mean` and `std` (one value per band) in the config"
            )
        mean = mean or [EO2_MEAN[HLS_BANDS.index(n)] for n in names]
        std = std or [EO2_STD[HLS_BANDS.index(n)] for n in names]
    if len(mean) != len(names) or len(std) != len(names):
        raise DomainfmError(
            f"`mean` has {len(mean)} and `std` has {len(std)} values but {len(names)} bands are "
            f"selected ({', '.join(names)}): give one value per band"
        )
    if any(s <= 0 for s in std):
        raise DomainfmError(f"`std` values must be positive, got {list(std)}")
    return [float(m) for m in mean], [float(s) for s in std]
