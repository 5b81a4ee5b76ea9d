"""tools/analysis_tools/benchmark_eval.py and soc_mm.testing.eval_benchmark: the process-tree memory poll sees
memory allocated in child processes, the official script's worker count is patched in a copy, and the tool
runs an official-style script and eval_rvos.py side by side on a generated split (the official script is a
stand-in here, implementing its rules from tests/test_evaluation/rvos_official_rules.py: CI cannot fetch the
real one)."""
import json
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT, TESTS_DIR
from soc_mm.testing.eval_benchmark import parse_metric_lines, patched_official_script, run_measured

ALLOCATING_CHILDREN = textwrap.dedent('''
    import multiprocessing, time
    def hold(n):
        block = bytearray(n)          # touched: resident
        for i in range(0, n, 4096):
            block[i] = 1
        time.sleep(1.0)
    if __name__ == '__main__':
        ps = [multiprocessing.Process(target=hold, args=(80 * 2**20,)) for _ in range(2)]
        [p.start() for p in ps]
        [p.join() for p in ps]
        print('J: 0.5')
''')


def test_memory_of_the_process_tree(tmp_path):
    script = tmp_path / 'alloc.py'
    script.write_text(ALLOCATING_CHILDREN)
    measured = run_measured([sys.executable, str(script)], interval=0.05)
    assert measured.returncode == 0 and parse_metric_lines(measured.stdout) == {'J': 0.5}
    assert measured.peak_processes >= 3
    assert measured.peak_pss >= 150 * 2**20 and measured.peak_rss >= measured.peak_pss
    assert measured.wall_s >= 1.0


def test_patched_official_script(tmp_path):
    script = tmp_path / 'eval_x.py'
    script.write_text('import os\nNUM_WOEKERS = 64\nprint(NUM_WOEKERS)\n')
    patched = patched_official_script(str(script), 3, str(tmp_path))
    assert open(patched).read() == 'import os\nNUM_WOEKERS = 3\nprint(NUM_WOEKERS)\n'
    assert open(script).read().count('64') == 1  # the official copy is untouched
    script.write_text('print(1)\n')
    with pytest.raises(ValueError, match='no "NUM_WOEKERS = <number>" line'):
        patched_official_script(str(script), 3, str(tmp_path))


STAND_IN = textwrap.dedent('''
    # stand-in for MeViS's tools/eval_mevis.py (same arguments and outputs), the rules from the tests
    import argparse, json, sys
    from rvos_official_rules import mevis_official
    NUM_WOEKERS = 64
    parser = argparse.ArgumentParser()
    for name in ('--mevis_exp_path', '--mevis_mask_path', '--mevis_pred_path', '--save_name'):
        parser.add_argument(name)
    args = parser.parse_args()
    per_exp, (j, f, jf) = mevis_official(args.mevis_exp_path, args.mevis_mask_path, args.mevis_pred_path)
    json.dump(per_exp, open(args.save_name, 'w'))
    print(f'workers: {NUM_WOEKERS}')
    print(f'J: {j}')
    print(f'F: {f}')
    print(f'J&F: {jf}')
''')


def test_tool_side_by_side(tmp_path):
    official = tmp_path / 'official' / 'eval_mevis.py'
    official.parent.mkdir()
    official.write_text(STAND_IN)
    data_dir, out = str(tmp_path / 'data'), str(tmp_path / 'result.json')
    run = subprocess.run([sys.executable, 'tools/analysis_tools/benchmark_eval.py', 'mevis', '--official-script',
                          str(official), '--data-dir', data_dir, '--num-videos', '3', '--num-frames', '4', '--size',
                          '32', '40', '--workers', '2', '--official-pythonpath', TESTS_DIR,
                          '--out', out], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert '| official | 2 |' in run.stdout and '| ours (eval_rvos.py) | 2 |' in run.stdout
    result = json.load(open(out))
    assert result['max_abs_diff'] <= 1e-9 and result['per_expression_max_abs_diff'] <= 1e-9
    assert result['official']['peak_pss'] > 0 and result['ours']['peak_pss'] > 0
    assert result['videos'] == 3 and result['expressions'] > 10
    # the stand-in ran as the patched copy (2 workers), with the split and predictions generated once
    patched = osp.join(data_dir, 'runs', 'patched_eval_mevis.py')
    assert 'NUM_WOEKERS = 2' in open(patched).read()
    assert osp.isfile(osp.join(data_dir, 'valid_u', 'meta_expressions_v2.json'))
    assert osp.isdir(osp.join(data_dir, 'predictions', 'valid_u_0000'))
    assert not osp.exists(osp.join(data_dir, 'predictions', 'valid_u_0002'))  # one video without predictions
