"""Result files named after their inputs; collisions never overwrite."""

from __future__ import annotations

import pytest

from facedit.jobs_log import LogRow, append_rows, read_rows, request_key
from facedit.outputs import OutputNamer, place_file, write_new


def test_names_follow_the_input_and_collisions_get_the_next_free_stem(tmp_path):
    (tmp_path / "portrait.smile+2.png").write_bytes(b"from an earlier run")
    namer = OutputNamer(tmp_path)
    assert namer.stem_for("portrait", [".smile+2.png"]) == "portrait-2"
    assert namer.stem_for("portrait", [".smile+2.png"]) == "portrait-3"  # remembered
    # one stem for all of an input's files, even when only one of them collides
    (tmp_path / "face.smile+3.png").write_bytes(b"x")
    assert namer.stem_for("face", [".smile-3.png", ".smile+3.png"]) == "face-2"
    assert namer.stem_for("../../etc/x", [".a.png"]) == "_.._etc_x"
    assert namer.stem_for(".hidden", [".a.png"]) == "hidden"


def test_placing_never_overwrites(tmp_path):
    source = tmp_path / "source.png"
    source.write_bytes(b"new")
    target = tmp_path / "target.png"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        place_file(source, target)
    with pytest.raises(FileExistsError):
        write_new(target, b"new")
    assert target.read_bytes() == b"old"
    place_file(source, tmp_path / "linked.png")
    assert (tmp_path / "linked.png").read_bytes() == b"new"


def test_log_rows_round_trip_and_tolerate_bad_lines(tmp_path):
    row = LogRow("in/a.jpg", "j1", "succeeded", seconds=1.234567, sha256="ab",
                 request="k", suppressor="poisson",
                 results=[{"label": "smile+2", "file": "a.smile+2.png", "intermediates": {}}])
    append_rows(tmp_path, [row])
    with open(tmp_path / "jobs.jsonl", "a") as log:
        log.write("not json\n[1, 2]\n")
    append_rows(tmp_path, [LogRow("in/b.jpg", None, "failed", error_code="invalid_image")])
    rows = read_rows(tmp_path)
    assert [r.input for r in rows] == ["in/a.jpg", "in/b.jpg"]
    assert rows[0].results == row.results and rows[0].seconds == 1.2346


def test_request_key_changes_with_each_part():
    base = ("ab", [{"attribute": "smile", "strength": 2.0}], {"format": "png"}, "toy:1")
    key = request_key(*base)
    assert key == request_key(*base)
    assert key != request_key("cd", *base[1:])
    assert key != request_key(base[0], [{"attribute": "smile", "strength": 3.0}], *base[2:])
    assert key != request_key(*base[:2], {"format": "jpg"}, base[3])
    assert key != request_key(*base[:3], "official:x")
