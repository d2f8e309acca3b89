"""The job options beside the pipeline's, checked in one place for the CLI, API and runner."""

from __future__ import annotations

import pytest

from shared.core.contracts import JobOptions
from shared.core.errors import InvalidEditRequest


def test_defaults_and_round_trip():
    options = JobOptions.from_options({"pipeline": {"suppressor": "naive"}})
    assert options == JobOptions()
    assert options.to_options() == {"format": "png", "quality": 95, "align": "auto",
                                    "all_faces": False, "detector": "hog",
                                    "save_latents": False}
    full = JobOptions.from_options({"format": "jpeg", "quality": 80, "latent": "file:///x.pt",
                                    "detector": "cnn", "save_latents": True})
    assert full.format == "jpg" and full.content_type == "image/jpeg"
    assert JobOptions.from_options(full.to_options()) == full


@pytest.mark.parametrize(
    "options, message",
    [({"format": "gif"}, "format"), ({"quality": 0}, "quality"), ({"quality": 101}, "quality"),
     ({"quality": True}, "quality"), ({"align": "maybe"}, "align"),
     ({"detector": "mtcnn"}, "detector"), ({"all_faces": "yes"}, "all_faces"),
     ({"save_latents": 1}, "save_latents"), ({"latent": ""}, "latent")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(InvalidEditRequest, match=message):
        JobOptions.from_options(options)
