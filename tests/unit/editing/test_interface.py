"""Both pipelines the runner drives satisfy the protocol it is written against."""

from __future__ import annotations

import torch

from shared.core.edits import parse_edit
from shared.editing.bundle import toy_bundle
from shared.editing.interface import EditingPipeline
from shared.editing.null_pipeline import NullPipeline
from shared.editing.pipeline import EditPipeline


def test_pipelines_satisfy_the_runner_protocol():
    edit_pipeline = EditPipeline(toy_bundle())
    for pipeline in (edit_pipeline, NullPipeline()):
        assert isinstance(pipeline, EditingPipeline)
        assert isinstance(pipeline.with_config(edit_pipeline.config), EditingPipeline)
        bundle = pipeline.bundle
        assert bundle.preset and bundle.fingerprint and bundle.output_size > 0
        out = pipeline.run(torch.rand(2, 3, 64, 64), [[[parse_edit("smile=+1")]]] * 2)
        assert out.source == [0, 1] and out.result.shape[0] == out.mask.shape[0] == 2
        assert isinstance(out.suppressor, str) and isinstance(out.intermediates(), dict)
    assert not isinstance(object(), EditingPipeline)
