"""scripts/gpu_bench.sh runs end to end on the CPU with tiny counts (so it cannot rot)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_script_writes_table_and_plot(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [str(ROOT / "scripts" / "gpu_bench.sh"), str(tmp_path), "--device", "cpu", "--repeats", "1",
         "--targets", "1", "2", "--sizes", "255", "383", "--guard-frames", "3"],  # fmt: skip
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    seen = {(r["arch"], r["backend"], r["crops"], r["targets"]) for r in rows}
    for arch in ("siammask_r50", "siammask_mnv2"):
        expected = {(arch, "torch", "host", "1"), (arch, "torch", "device", "2"), (arch, "onnxruntime", "host", "2"),
                    (arch, "reference", "host", "1")}  # fmt: skip
        assert expected <= seen
    assert all(float(r["step_ms"]) > 0 for r in rows)
    assert "| arch |" in (tmp_path / "results.md").read_text()
    plot = cv2.imread(str(tmp_path / "bench.png"))
    assert plot is not None and plot.shape[0] > 100
    assert "largest relative error" in (tmp_path / "export.txt").read_text()
    assert run.stdout.count("-> holds") == 6  # per arch: torch with host and device crops, onnxruntime
    checks = (tmp_path / "gpu_checks.md").read_text()
    assert "| FAIL |" not in checks and checks.count("| pass |") >= 15, checks
    parts = ("TF32 off", "bit for bit", "mixed search sizes", "saved and resumed", "device crops", "copies back per frame")
    for part in parts:
        assert part in checks


def test_gpu_bench_script_refuses_a_missing_device(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    run = subprocess.run([str(ROOT / "scripts" / "gpu_bench.sh"), str(tmp_path), "--bogus"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and "unknown option --bogus" in run.stderr
