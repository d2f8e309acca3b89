import math

import pytest

from shared.edits import MAX_STRENGTH, EditSpec, make_edit, parse_edit
from shared.errors import InvalidEditRequest


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
