"""Real faces cropped by the shared crop protocol (:mod:`realdata.face_crop`, the one
synthetic faces use too), held in memory with their crop transforms.

Crops are cached per process, keyed on the image file (path, mtime, size), its points and
the crop size and factor: a benchmark that scores many models on one split, or a loop
whose tasks each need the real faces, crops each face once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realdata import face_crop
from realdata.errors import DataFormatError
from realdata.face_crop import crop_face
from realdata.landmarks import FaceSet, read_landmark_folder

__all__ = ["N_IBUG", "RealFaces", "load_real_faces"]

N_IBUG = 68  # points of the iBug / 300-W layout, the one real labels use


@dataclass(frozen=True, eq=False)
class RealFaces:
    """Real faces cropped by the shared protocol.

    images: (N, size, size, 3) uint8; points: (N, 68, 2) crop coordinates (NaN where
    unlabeled); transforms: original -> crop, one per face (``from_crop`` maps back).
    """

    face_set: FaceSet
    images: np.ndarray
    points: np.ndarray
    transforms: tuple[Any, ...]
    size: int

    def __len__(self) -> int:
        return len(self.images)

    def nchw(self, indices: Any = None) -> np.ndarray:
        """uint8 (N, 3, size, size), as the landmark models take them
        (``torch.from_numpy`` of it is a batch)."""
        imgs = self.images if indices is None else self.images[indices]
        return np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))

    def subset(self, indices: Any) -> RealFaces:
        idx = np.asarray(indices, dtype=np.int64)
        return RealFaces(self.face_set.subset(idx.tolist()), self.images[idx], self.points[idx],
                         tuple(self.transforms[i] for i in idx), self.size)

    def relabeled(self, points: Any) -> RealFaces:
        """The same crops labeled with ``points`` ((N, 68, 2) crop coordinates, e.g. a
        teacher's pseudo-labels). The face set carries them too, mapped back to the images,
        so whatever crops these faces again (another size) sees the new labels, never the
        old ones."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape != self.points.shape:
            raise ValueError(f"points must be {self.points.shape}, got {pts.shape}")
        if not np.isfinite(pts).all():
            raise ValueError("points must be finite")
        in_images = np.stack([t.from_crop(p) for t, p in zip(self.transforms, pts, strict=True)])
        fs = FaceSet(self.face_set.names, self.face_set.image_paths, in_images,
                     self.face_set.source)
        return RealFaces(fs, self.images, pts.astype(self.points.dtype), self.transforms, self.size)


_CROPS: OrderedDict[tuple, tuple[np.ndarray, Any]] = OrderedDict()
_CROPS_MAX = 8192  # ~400 MB of 128x128 crops; LFPW is 805 faces


def _crop_key(face_set: FaceSet, i: int, size: int, enlarge: float) -> tuple:
    path = face_set.image_paths[i]
    if path is None:
        raise DataFormatError(face_set.source or "<faces>",
                              f"sample {face_set.names[i]!r} has no image")
    try:
        st = Path(path).stat()
    except OSError:
        raise DataFormatError(path, "image file not found") from None
    return (str(Path(path).resolve()), st.st_mtime_ns, st.st_size,
            np.asarray(face_set.points[i], np.float64).tobytes(), int(size), float(enlarge))


def _crop_whole_image(face_set: FaceSet, i: int, size: int):
    """An image without labels is taken as an already-cropped face: its whole extent,
    squared around the centre, resized to ``size``."""
    img = face_set.image(i)
    h, w = img.shape[:2]
    return crop_face(img, (-0.5, -0.5, w - 0.5, h - 0.5), size)


def load_real_faces(data: str | Path | FaceSet | RealFaces, size: int = 128, *,
                    require_labels: bool = True) -> RealFaces:
    """Real faces from a folder of images with sibling ``.pts`` files (or a FaceSet),
    cropped by the shared protocol (mode "landmarks", :mod:`realdata.face_crop`).

    Crops are cached in memory per image (path, mtime, size, points, crop size and
    factor), so a benchmark that evaluates many models, or a split's halves, crops each
    face once. ``require_labels=False`` (unlabeled DA targets) keeps images without a
    ``.pts`` as already-cropped faces (see :func:`_crop_whole_image`). A missing or
    malformed folder raises DataFormatError naming it (or the offending file).
    """
    if isinstance(data, RealFaces):
        if data.size == size:
            return data
        data = data.face_set  # the same faces, cropped again at this size (cached per image)
    fs = data if isinstance(data, FaceSet) else read_landmark_folder(data, require_labels=require_labels)
    if len(fs) == 0:
        raise DataFormatError(fs.source or str(data), "no faces (images with .pts files) found")
    if fs.points.shape[1] != N_IBUG:
        raise DataFormatError(fs.source or str(data), f"faces have {fs.points.shape[1]} points, "
                                                      "need the 68-point iBug layout")
    labeled = fs.labeled
    if require_labels and not labeled.all():
        bad = [fs.names[i] for i in np.flatnonzero(~labeled)[:3]]
        raise DataFormatError(fs.source or str(data), f"faces without complete labels: {bad}")
    enlarge = face_crop.DEFAULT_ENLARGE
    keys = [_crop_key(fs, i, size, enlarge) for i in range(len(fs))]
    todo = [i for i, k in enumerate(keys) if k not in _CROPS]
    todo_lab = [i for i in todo if labeled[i]]
    if todo_lab:
        try:
            imgs, _, tfs = face_crop.crop_face_set(fs.subset(todo_lab), size, enlarge)
        except DataFormatError:
            raise  # an image file that cannot be read: the error names it
        except ValueError as e:  # a face whose points cannot place a crop box
            raise DataFormatError(fs.source or str(data), str(e)) from None
        for j, i in enumerate(todo_lab):
            _remember(keys[i], (imgs[j], tfs[j]))
    for i in todo:
        if not labeled[i]:
            _remember(keys[i], _crop_whole_image(fs, i, size))
    crops = [_CROPS[k] for k in keys]
    for k in keys:
        _CROPS.move_to_end(k)
    tfs = tuple(c[1] for c in crops)
    points = np.stack([tf.to_crop(p) for tf, p in zip(tfs, fs.points, strict=True)])
    return RealFaces(fs, np.stack([c[0] for c in crops]), points, tfs, size)


def _remember(key: tuple, value: tuple[np.ndarray, Any]) -> None:
    _CROPS[key] = value
    while len(_CROPS) > _CROPS_MAX:
        _CROPS.popitem(last=False)
