"""tools/analysis_tools/benchmark_stream.py on the tiny SOC with small videos: the videos it writes, one child
process per run, its table and JSON (plumbing; the numbers themselves are not checked)."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, subprocess_env

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_stream.py')
_spec = importlib.util.spec_from_file_location('benchmark_stream', TOOL)  # the tool's helpers, from its file
benchmark_stream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_stream)


def test_written_video_has_its_frames(tmp_path):
    from soc_mm.apis import count_video_frames, iter_video_frames
    path = benchmark_stream.write_video(str(tmp_path / 'v.mp4'), 7, (32, 48))
    frames = list(iter_video_frames(path))
    assert len(frames) == 7 == count_video_frames(path) and frames[0].shape == (32, 48, 3)
    assert not (frames[0] == frames[6]).all()  # the shapes and the gradient move


def test_summary_ratios():
    rows = [dict(frames=n, expressions=k, peak_rss_mib=rss, fps=fps, frames_per_cpu_second=cpu)
            for n, k, rss, fps, cpu in ((10, 1, 100.0, 4.0, 5.0), (30, 1, 110.0, 5.0, 5.5), (10, 2, 200.0, 2.0, 2.0),
                                        (30, 2, 200.0, 2.0, 2.2))]
    ratios = benchmark_stream.summarise(rows, [10, 30], [1, 2])
    assert abs(ratios['1']['rss_longest_over_shortest'] - 1.1) < 1e-9 and abs(ratios['1']['fps_spread'] - 0.25) < 1e-9
    assert abs(ratios['2']['cpu_fps_spread'] - 0.1) < 1e-9 and ratios['2']['rss_longest_over_shortest'] == 1.0


def test_benchmark_stream_runs_and_reports(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run([sys.executable, TOOL, osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py'),
                           '--cfg-options', f'model.text_encoder.model_path={TEXT_ENCODER_DIR}', '--lengths', '3', '5',
                           '--expressions', '2', '--size', '32', '48', '--clip-len', '2', '--threads', '1', '--out',
                           str(out), '--video-dir', str(tmp_path / 'videos')],
                          capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '| frames | expressions | peak RSS (MiB) |' in proc.stdout
    assert '2 expression(s): peak RSS 5 / 3 frames = ' in proc.stdout
    result = json.loads(out.read_text())
    assert [(r['frames'], r['expressions']) for r in result['rows']] == [(3, 2), (5, 2)]
    for row in result['rows']:
        assert row['peak_rss_mib'] >= row['rss_after_load_mib'] > 0 and row['fps'] > 0 and row['cpu_seconds'] > 0
    assert osp.isfile(tmp_path / 'videos' / 'stream_5_32x48.mp4')
