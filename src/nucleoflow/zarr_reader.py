"""OME-Zarr (NGFF 0.4/0.5, bioformats2raw layouts): a folder read chunk by chunk, its axes, channel
names and pixel size from its attributes. Registered in reader.FOLDER_FORMATS."""

import math
from pathlib import Path

import numpy as np

from .errors import InputError
from .region import MAX_CHUNK_BYTES, ImageFormat, RegionSource, check_dims, unit_to_um

SUFFIXES = (".zarr",)

def is_zarr(path):
    path = Path(path)
    return path.is_dir() and (path.suffix.lower() in SUFFIXES or any((path / f).exists() for f in (".zattrs", "zarr.json", ".zgroup")))


def _multiscales(attrs):
    return attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")


def _open_zarr(path, name, channel, pixel_size_um):
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        if not _multiscales(attrs) and "bioformats2raw.layout" in {**attrs, **attrs.get("ome", {})} and "0" in group:
            group = group["0"]  # bioformats2raw: the first image of the container
            attrs = group.attrs.asdict()
    except Exception as exc:
        raise InputError(
            name,
            f"cannot be opened as a Zarr group ({type(exc).__name__}: {exc})",
            "Point to an OME-Zarr image folder (NGFF), e.g. written by bioformats2raw or ome-zarr",
        ) from exc
    multiscales = _multiscales(attrs)
    if not multiscales:
        raise InputError(
            name,
            "holds no multiscale image (no 'multiscales' in its OME-Zarr attributes)",
            "Point to one OME-Zarr image folder (NGFF 0.4/0.5, e.g. from bioformats2raw or ome-zarr), not a plate, a labels group or a plain Zarr array",
        )
    ms = multiscales[0]
    try:
        array = group[ms["datasets"][0]["path"]]
    except Exception as exc:
        raise InputError(
            name, f"names a full-resolution dataset it does not hold ({type(exc).__name__}: {exc})", "The OME-Zarr is incomplete: write it again"
        ) from exc
    axes_meta = ms.get("axes") or list("tczyx"[-array.ndim :])
    axis_names = [(a["name"] if isinstance(a, dict) else str(a)).lower() for a in axes_meta]
    if len(axis_names) != array.ndim:
        raise InputError(name, f"declares axes {axis_names} for an array of shape {array.shape}", "The OME-Zarr metadata is inconsistent: write it again")
    axes = "".join({"y": "Y", "x": "X", "c": "C", "z": "Z", "t": "T"}.get(a, "Q") for a in axis_names)
    sizes = dict(zip(axes, array.shape))
    check_dims(name, sizes.get("Y", 0), sizes.get("X", 0), sizes.get("C", 1), np.dtype(array.dtype).itemsize)
    chunk = math.prod(array.chunks) * np.dtype(array.dtype).itemsize
    if chunk > MAX_CHUNK_BYTES:
        raise InputError(
            name, f"stores its pixels in chunks of {chunk} bytes, over the {MAX_CHUNK_BYTES} byte limit", "Re-write it with smaller chunks (e.g. 1024x1024)"
        )
    scale = [1.0] * len(axes)
    for transform in list(ms["datasets"][0].get("coordinateTransformations", [])) + list(ms.get("coordinateTransformations", [])):
        if transform.get("type") == "scale":
            scale = [a * b for a, b in zip(scale, transform["scale"])]
    pixel_size = None
    if "Y" in axes and "X" in axes:
        units = [unit_to_um(a.get("unit")) if isinstance(a, dict) and a.get("unit") else None for a in axes_meta]
        iy, ix = axes.index("Y"), axes.index("X")
        if units[iy] and units[ix]:
            pixel_size = (scale[iy] * units[iy], scale[ix] * units[ix])
    names = [(c.get("label") or "") for c in (attrs.get("omero") or (attrs.get("ome") or {}).get("omero") or {}).get("channels", [])]
    return RegionSource(array, name, axes, channel, names or None, rgb=False, pixel_size=pixel_size, pixel_size_um=pixel_size_um, pixel_size_source="ome")


def open_file(path, name, channel, pixel_size_um, size):
    return _open_zarr(path, name, channel, pixel_size_um)


FORMAT = ImageFormat("OME-Zarr", SUFFIXES, open_file=open_file, is_folder=is_zarr)
