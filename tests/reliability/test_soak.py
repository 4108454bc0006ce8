"""The short soak: mixed valid and hostile requests against a real `segmenter serve` process.

Zero wrong answers, no 5xx but 503 back-pressure, RSS growth under 5% after warm-up, no leaked
file descriptors or temporary files. The long run is `python benchmarks/soak.py --minutes 10`
(docs/reliability.md).
"""

from __future__ import annotations

import os

from benchmarks.soak import run
from service.settings import BUNDLED_MODELS


def test_short_soak_of_mixed_valid_and_hostile_requests():
    minutes = float(os.environ.get("SEGMENTER_SOAK_MINUTES", "0.25"))
    report = run(BUNDLED_MODELS, minutes=minutes, concurrency=8)
    print("\nsoak:", report.summary())
    assert report.requests > 50 and report.valid and report.hostile
    assert not report.wrong, report.wrong[:10]
    assert report.server_errors == 0
    assert report.rss_growth < 0.05, report.summary()
    assert report.fds_end <= report.fds_after_warmup, report.summary()
    assert report.temp_files_left == 0
