"""The CLI's pure parts: the progress bar drawn on a terminal, byte sizes with binary
suffixes, and the summary `uploadsession status` prints."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from uploadsession.cli.commands import describe_session
from uploadsession.cli.options import parse_byte_size
from uploadsession.cli.terminal import TerminalProgress, render_progress
from uploadsession.client import SEGMENT_UNIT, Progress

U = SEGMENT_UNIT


def test_the_progress_bar_shows_percent_bytes_rate_and_eta_within_the_width() -> None:
    p = Progress(
        size=20 * 1024 * 1024,
        done=9 * 1024 * 1024,
        in_flight=0,
        sent=0,
        elapsed=1.5,
        rate=2 * 1024 * 1024,
    )
    line = render_progress(p, 80)
    assert line.startswith(" 45% [")
    assert "9.0 MiB/20.0 MiB" in line and "2.0 MiB/s" in line and "ETA 0:06" in line
    assert len(line) <= 80
    assert len(render_progress(p, 30)) <= 30
    done = Progress(100, 100, 0, 100, 75.0, 10.0, finished=True)
    assert "100%" in render_progress(done) and "in 1:15" in render_progress(done)
    assert "ETA --:--" in render_progress(Progress(100, 0, 0, 0, 0.0, 0.0))


def test_the_terminal_bar_redraws_in_place_and_ends_its_line_when_finished() -> None:
    out = io.StringIO()
    bar = TerminalProgress(out)
    bar(Progress(100, 10, 0, 10, 1.0, 10.0))
    bar(Progress(100, 100, 0, 100, 2.0, 50.0, finished=True))
    text = out.getvalue()
    assert text.startswith("\r") and text.count("\r") == 2 and text.endswith("\n")
    bar.close()  # nothing more once ended
    assert out.getvalue() == text


def test_sizes_accept_binary_suffixes() -> None:
    assert parse_byte_size("327680") == U
    assert parse_byte_size("320KiB") == parse_byte_size("320k") == U
    assert parse_byte_size("5MiB") == parse_byte_size("5M") == 5 * 1024 * 1024
    with pytest.raises(ValueError):
        parse_byte_size("5 GB")


def test_the_status_summary_names_received_missing_and_expiry() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    text = describe_session(
        {
            "id": "d10b32d8-30ed-4c72-a69b-a7155f81947d",
            "size": 1024,
            "contentType": "application/pdf",
            "documentName": "file.pdf",
            "expiryDateTime": "2026-01-02T11:30:00.000Z",
            "createdBy": {"user": {"id": "853364e6-6be9-4003-ad9b-acab84b41643"}},
            "missingRanges": [{"start": "512", "end": "1023"}],
            "nextExpectedRanges": [{"start": "512", "end": "1023"}],
        },
        now,
    )
    assert "received  512 of 1,024 bytes (50.0%)" in text
    assert "missing   512-1023" in text
    assert "expires   2026-01-02T11:30:00.000Z (in 23 h 30 min)" in text
    assert "file.pdf (application/pdf)" in text
