"""results.jsonl: append + flush, a torn last line is dropped, duplicates removed, resume."""

from __future__ import annotations

import json

from runners.results import ResultsWriter, read_results


def test_torn_line_and_duplicates_are_cleaned(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(
        json.dumps({"id": "a"})
        + "\n"
        + json.dumps({"id": "b"})
        + "\n"
        + json.dumps({"id": "a"})
        + "\n"
        + '{"id": "c", "pr'
    )
    rows, dropped = read_results(path)
    assert [r["id"] for r in rows] == ["a", "b"] and dropped == 2
    with ResultsWriter(path) as w:
        assert w.done_ids == {"a", "b"}
        w.write({"id": "c", "pred": "yes"})
    rows, dropped = read_results(path)
    assert [r["id"] for r in rows] == ["a", "b", "c"] and dropped == 0
    assert path.read_text().count("\n") == 3


def test_each_line_is_on_disk_before_close(tmp_path):
    path = tmp_path / "results.jsonl"
    w = ResultsWriter(path)
    w.write({"id": "x"})
    assert read_results(path)[0] == [{"id": "x"}]  # readable while the writer is still open
    w.close()
