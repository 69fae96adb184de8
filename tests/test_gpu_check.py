"""The GPU check script (bench/gpu_check.sh) runs its CPU fallback here, so it cannot rot before a GPU runs it."""

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_check_script_runs_every_task_and_resumes_exactly_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["tasks"]) == {"image", "text", "translate", "gan", "detect", "segment"}  # on a GPU, every task
    assert all(t["loads_on_cpu"] and t["samples_per_s"] > 0 for t in report["tasks"].values())
    assert report["resume"]["identical"] and report["failures"] == []
