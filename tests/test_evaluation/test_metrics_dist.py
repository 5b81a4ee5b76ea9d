"""A 2-process (torchrun, gloo, CPU) evaluation gives the same metrics as 1 process."""
import json
import os
import subprocess
import sys

import pytest

from dist_metric_runner import NUM_SAMPLES, build_samples, run  # beside this file (pytest's import path)

HERE = os.path.dirname(os.path.abspath(__file__))


def test_two_process_equals_one_process(tmp_path):
    single = run(build_samples(), list(range(NUM_SAMPLES)), NUM_SAMPLES, str(tmp_path / 'single'))

    out = tmp_path / 'dist.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           os.path.join(HERE, 'dist_metric_runner.py'), str(out), str(tmp_path / 'dist')]
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f'torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    dist = json.loads(out.read_text())
    assert set(dist) == set(single) and len(single) > 10
    for key, value in single.items():
        assert dist[key] == pytest.approx(value, rel=0, abs=0), key
