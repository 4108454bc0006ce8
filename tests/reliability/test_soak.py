"""The short soak: mixed valid and hostile requests against a real `segmenter serve` process.

Runs `benchmarks/soak.py` as a user would and checks its report: zero wrong answers, no 5xx but
503 back-pressure, RSS growth under 5% after warm-up, peak RSS under the stated ceiling with
requests abandoned mid-processing, no leaked file descriptors or temporary files. The long run
is `python benchmarks/soak.py --minutes 10` (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_of_mixed_valid_and_hostile_requests(tmp_path):
    minutes = os.environ.get("SEGMENTER_SOAK_MINUTES", "0.25")
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "benchmarks/soak.py", "--minutes", minutes, "--concurrency", "8",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    print("\nsoak:", proc.stdout.strip())
    report = json.loads(out.read_text())
    assert report["requests"] > 50 and report["valid"] and report["hostile"]
    assert not report["wrong"], report["wrong"][:10]
    assert report["server_errors"] == 0
    assert report["rss_growth"] < 0.05, proc.stdout
    assert report["abandoned"] > 0 and report["rss_peak_mib"] <= report["ceiling_mib"], proc.stdout
    assert report["fds_end"] <= report["fds_after_warmup"], proc.stdout
    assert report["temp_files_left"] == 0
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
