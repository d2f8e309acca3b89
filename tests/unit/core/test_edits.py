import math
import re

import pytest

from shared.core.edits import (
    MAX_STRENGTH,
    EditSpec,
    check_request,
    expand_variants,
    make_edit,
    parse_edit,
    variant_label,
)
from shared.core.errors import InvalidEditRequest


def test_parse_forms():
    assert parse_edit("smile=+3") == EditSpec("smile", 3.0, None)
    assert parse_edit(" Age = -2.5 ") == EditSpec("age", -2.5, None)
    assert parse_edit("pose=1@0-6") == EditSpec("pose", 1.0, (0, 6))


@pytest.mark.parametrize(
    "text",
    [
        "smile",
        "smile=",
        "=3",
        "smile=abc",
        "smile=nan",
        "smile=inf",
        "smile=-inf",
        f"smile={MAX_STRENGTH * 2}",
        "smile=1@6-2",
        "9lives=1",
    ],
)
def test_parse_rejects(text):
    with pytest.raises(InvalidEditRequest):
        parse_edit(text)


def test_dict_round_trip_and_validation():
    spec = parse_edit("glasses=2@2-8")
    assert EditSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InvalidEditRequest, match="attribute"):
        EditSpec.from_dict({"strength": 1})
    with pytest.raises(InvalidEditRequest, match="boolean"):
        make_edit("smile", True)
    with pytest.raises(InvalidEditRequest, match="not finite"):
        make_edit("smile", math.nan)


# ---------------------------------------------------------------- sweeps


def test_sweep_parses_into_even_steps_with_ends_included():
    spec = parse_edit("smile=-3:3:7")
    assert spec.sweep is not None and spec.sweep.steps == 7
    assert spec.sweep.strengths() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert parse_edit("age=0:1:11").sweep.strengths()[3] == 0.3  # no 0.30000000000000004
    assert parse_edit("pose=1:0:2@0-6") == EditSpec(
        "pose", 1.0, (0, 6), parse_edit("pose=1:0:2").sweep
    )
    assert str(spec) == "smile=-3:3:7" and spec.label == "smile-3:3:7"


@pytest.mark.parametrize(
    "text, message",
    [("smile=-3:3:1", "outside [2, 64]"), ("smile=-3:3:65", "outside [2, 64]"),
     ("smile=2:2:5", "start and end are both 2"), ("smile=-3:3", "START:END:STEPS"),
     ("smile=-3:3:2.5", "not an integer"), ("smile=-300:3:4", "outside"),
     ("smile=a:3:4", "not a number")],
)
def test_sweep_rejects(text, message):
    with pytest.raises(InvalidEditRequest, match=re.escape(message)):
        parse_edit(text)


def test_variants_expand_one_sweep_with_the_other_edits():
    edits = [parse_edit("age=-1"), parse_edit("smile=0:1:3")]
    variants = expand_variants(edits)
    assert [[str(e) for e in v] for v in variants] == [
        ["age=-1", "smile=+0"], ["age=-1", "smile=+0.5"], ["age=-1", "smile=+1"]
    ]
    assert [variant_label(v) for v in variants] == ["age-1,smile+0", "age-1,smile+0.5",
                                                    "age-1,smile+1"]
    assert expand_variants([parse_edit("smile=+2")]) == [(parse_edit("smile=+2"),)]
    with pytest.raises(InvalidEditRequest, match="at most one sweep"):
        expand_variants([parse_edit("smile=0:1:3"), parse_edit("age=0:1:3")])
    with pytest.raises(InvalidEditRequest, match="at least one edit"):
        check_request([])


def test_sweep_dict_round_trip():
    spec = parse_edit("smile=-3:3:7@2-8")
    data = spec.to_dict()
    assert data == {"attribute": "smile", "sweep": {"start": -3.0, "end": 3.0, "steps": 7},
                    "layers": [2, 8]}
    assert EditSpec.from_dict(data) == spec
    with pytest.raises(InvalidEditRequest, match="not both"):
        EditSpec.from_dict({**data, "strength": 1})
    with pytest.raises(InvalidEditRequest, match="either strength or sweep"):
        EditSpec.from_dict({"attribute": "smile"})
    with pytest.raises(InvalidEditRequest, match="steps"):
        EditSpec.from_dict({"attribute": "smile", "sweep": {"start": 0, "end": 1, "steps": "7"}})
    with pytest.raises(InvalidEditRequest, match="outside"):
        EditSpec.from_dict({"attribute": "smile", "sweep": {"start": 0, "end": 1, "steps": 99}})
