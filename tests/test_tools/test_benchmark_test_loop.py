"""tools/analysis_tools/benchmark_test_loop.py in miniature: generated Ref-YouTube-VOS valid split, the real
test set-up, tools/test.py timed phase by phase, the zip checked against a reference."""
import json
import os
import os.path as osp
import subprocess
import sys
import zipfile

from conftest import REPO_ROOT as REPO


def test_benchmark_test_loop_times_every_phase_and_compares_the_zip(tmp_path):
    reference = tmp_path / 'reference.zip'
    with zipfile.ZipFile(reference, 'w') as zf:  # not the zip the run writes: the comparison must fail
        zf.writestr('Annotations/', b'')
    work_dir, out = tmp_path / 'work', tmp_path / 'timings.json'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_test_loop.py'),
           '--num-valid', '2', '--num-frames', '3', '--size', '48', '64', '--num-workers', '1',
           '--work-dir', str(work_dir), '--out', str(out), '--reference-zip', str(reference)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: the zips differ
    assert f'DIFFERS from {reference}' in proc.stdout
    result = json.loads(out.read_text())
    rows = {name: wall for name, wall, _ in result['rows']}
    assert abs(sum(rows.values()) - result['total']) < 1e-6  # the phases cover the whole wall time
    for phase in ('start-up: Python + imports', 'model (test_step)', 'data loading (DataLoader iteration)',
                  'metric process (checks; PNGs when written in the loop)', 'evaluate: zip + remove PNGs'):
        assert rows[phase] > 0, phase
        assert f'| {phase} |' in proc.stdout
    # nested timings: the zip is compute_metrics without its (no-op) wait for the PNG writes, the gather is
    # evaluate without compute_metrics and the wait before it; neither can come out negative
    assert rows['evaluate: other (gather)'] >= 0
    assert result['timings']['counts']['batches'] == 2  # one batch per video (its expressions together)
    # the zip holds one PNG per frame and expression of the generated valid videos (the test video removed)
    with open(work_dir / 'data' / 'meta_expressions' / 'valid' / 'meta_expressions.json') as f:
        videos = json.load(f)['videos']
    expected = sorted(f'Annotations/{v}/{e}/{frame}.png' for v, video in videos.items() if v.startswith('valid_')
                      for e in video['expressions'] for frame in video['frames'])
    with zipfile.ZipFile(result['zip']) as zf:
        members = zf.namelist()
    assert sorted(n for n in members if not n.endswith('/')) == expected and result['zip_files'] == len(expected)
