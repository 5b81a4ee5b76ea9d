"""tools/analysis_tools/check_submission.py: the zips our submission writers make pass (MeViS v2 valid,
Ref-YouTube-VOS valid without the competition test videos); every broken zip is refused with exit status 1
and a line naming each problem (layout, missing / extra video, expression, frame or file, PNG mode and size,
corrupted data)."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from soc_mm.datasets.synthetic import generate_ref_youtube_vos
from soc_mm.datasets.synthetic_mevis_v2 import generate_mevis_v2
from soc_mm.evaluation.functional.submission_check import check_submission
from soc_mm.registry import METRICS

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'check_submission.py')


def _write_with_metric(metric_type, meta_file, videos, out_dir, frame_sizes):
    """The zip a submission metric writes for predictions of every expression of ``videos``."""
    metric = METRICS.build(dict(type=metric_type, output_dir=out_dir, meta_file=meta_file, write_threads=0))
    samples = []
    for video_id, video in videos.items():
        h, w = frame_sizes[video_id]
        for exp_id in video['expressions']:
            masks = np.zeros((len(video['frames']), h, w), bool)
            masks[:, 2:h // 2, 3:w // 2] = True
            samples.append(dict(video_id=video_id, exp_id=exp_id, frame_ids=video['frames'], pred_masks=masks,
                                ori_shape=(h, w)))
    metric.process({}, samples)
    metric.evaluate(len(samples))
    return osp.join(out_dir, 'submission.zip')


def _frame_sizes(frames_dir, videos):
    sizes = {}
    for video_id, video in videos.items():
        with Image.open(osp.join(frames_dir, video_id, f'{video["frames"][0]}.jpg')) as image:
            sizes[video_id] = (image.height, image.width)
    return sizes


@pytest.fixture(scope='module')
def mevis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mevis_v2'))
    generate_mevis_v2(root, num_train=0, num_valid_u=0, num_valid=3, num_frames=4, size=(24, 32), seed=1)
    meta = osp.join(root, 'valid', 'meta_expressions_v2.json')
    videos = json.load(open(meta))['videos']
    frames_dir = osp.join(root, 'valid', 'JPEGImages')
    zip_path = _write_with_metric('MeViSSubmissionMetric', meta, videos, osp.join(root, 'out'),
                                  _frame_sizes(frames_dir, videos))
    return dict(meta=meta, videos=videos, frames_dir=frames_dir, zip=zip_path)


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_our_mevis_zip_passes(mevis):
    run = _run('mevis', mevis['zip'], '--meta-expressions', mevis['meta'], '--frames-dir', mevis['frames_dir'],
               '--decode')
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith('OK: ')


def test_our_ref_ytvos_zip_passes_and_the_test_videos_are_not_expected(tmp_path):
    root = str(tmp_path / 'ytvos')
    generate_ref_youtube_vos(root, num_train=1, num_valid=2, num_test=1, num_frames=3, size=(24, 32), seed=2)
    valid_meta = osp.join(root, 'meta_expressions', 'valid', 'meta_expressions.json')
    test_meta = osp.join(root, 'meta_expressions', 'test', 'meta_expressions.json')
    test_videos = set(json.load(open(test_meta))['videos'])
    videos = {v: d for v, d in json.load(open(valid_meta))['videos'].items() if v not in test_videos}
    assert test_videos and videos
    frames_dir = osp.join(root, 'valid', 'JPEGImages')
    zip_path = _write_with_metric('RefYTVOSSubmissionMetric', None, videos, str(tmp_path / 'out'),
                                  _frame_sizes(frames_dir, videos))
    run = _run('ref-ytvos', zip_path, '--meta-expressions', valid_meta, '--exclude-meta-expressions', test_meta,
               '--frames-dir', frames_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    run = _run('ref-ytvos', zip_path, '--meta-expressions', valid_meta)  # the test videos are then expected
    assert run.returncode == 1 and 'missing video: Annotations/' in run.stdout
    # the MeViS layout (no Annotations/ level) is refused for Ref-YouTube-VOS, saying how to zip
    flat = str(tmp_path / 'flat.zip')
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(flat, 'w') as dst:
        for info in src.infolist():
            if not info.is_dir():
                dst.writestr(info.filename[len('Annotations/'):], src.read(info))
    problems = check_submission('ref-ytvos', flat, valid_meta, exclude_meta=test_meta)
    assert problems[0].kind == 'layout' and 'wants Annotations/<video>/<exp_id>/<frame>.png' in problems[0].message


def _rewrite(src_zip, dst_zip, drop=(), add=(), rename=None):
    """Copy of ``src_zip`` without the members ``drop``, with ``add`` (name, bytes) and names mapped by
    ``rename``."""
    with zipfile.ZipFile(src_zip) as src, zipfile.ZipFile(dst_zip, 'w') as dst:
        for info in src.infolist():
            if info.filename in drop or info.is_dir():
                continue
            name = rename(info.filename) if rename else info.filename
            dst.writestr(name, src.read(info))
        for name, data in add:
            dst.writestr(name, data)
    return dst_zip


def _png_bytes(array):
    ok, data = cv2.imencode('.png', array)
    assert ok
    return data.tobytes()


def test_broken_mevis_zips_name_each_problem(mevis, tmp_path):
    videos = mevis['videos']
    v0, v1, v2 = list(videos)
    frames = videos[v0]['frames']
    with zipfile.ZipFile(mevis['zip']) as zf:
        h, w = cv2.imdecode(np.frombuffer(zf.read(f'{v0}/0/{frames[0]}.png'), np.uint8), cv2.IMREAD_UNCHANGED).shape
    drop = {f'{v0}/0/{frames[1]}.png'} | {f'{v1}/1/{f}.png' for f in frames} | \
        {f'{v2}/{e}/{f}.png' for e in videos[v2]['expressions'] for f in videos[v2]['frames']}
    add = [(f'{v0}/0/99999.png', _png_bytes(np.zeros((h, w), np.uint8))),  # a frame the video does not list
           (f'{v0}/77/{frames[0]}.png', _png_bytes(np.zeros((h, w), np.uint8))),  # an expression it does not have
           (f'not_a_video/0/{frames[0]}.png', _png_bytes(np.zeros((h, w), np.uint8))),
           ('.DS_Store', b'junk'), (f'__MACOSX/{v0}/._x.png', b'junk'),
           (f'{v0}/0/notes.txt', b'hello')]
    replaced = {f'{v0}/1/{frames[0]}.png': _png_bytes(np.zeros((h, w), np.uint16) + 1),  # 16-bit
                f'{v0}/1/{frames[1]}.png': _png_bytes(np.zeros((h, w, 3), np.uint8)),  # RGB
                f'{v0}/1/{frames[2]}.png': _png_bytes(np.zeros((h + 2, w), np.uint8)),  # wrong size
                f'{v0}/1/{frames[3]}.png': b'GIF89a not a png at all....'}
    broken = _rewrite(mevis['zip'], str(tmp_path / 'broken.zip'), drop=drop | set(replaced),
                      add=add + list(replaced.items()))
    run = _run('mevis', broken, '--meta-expressions', mevis['meta'], '--frames-dir', mevis['frames_dir'])
    assert run.returncode == 1
    out = run.stdout
    expected = [f'missing frame: {v0}/0/: 1 of the 4 frames have no PNG', f'missing expression: {v1}/1/',
                f'missing video: {v2}/', f'extra frame: {v0}/0/: 1 PNGs', f'extra expression: {v0}/77/',
                'extra video: not_a_video/', 'extra file: .DS_Store', f'extra file: __MACOSX/{v0}/._x.png',
                f'extra file: {v0}/0/notes.txt: not a .png file', f'PNG mode: {v0}/1/{frames[0]}.png: 16-bit grayscale',
                f'PNG mode: {v0}/1/{frames[1]}.png: 8-bit RGB', f'PNG size: {v0}/1/{frames[2]}.png: {h + 2}x{w}',
                f'not a PNG: {v0}/1/{frames[3]}.png']
    for line in expected:
        assert line in out, (line, out)
    assert out.strip().splitlines()[-1].startswith(f'{len(out.strip().splitlines()) - 1} problem(s)')


def test_layout_and_archive_problems(mevis, tmp_path):
    # zipped from one level too high: everything inside a folder, or under Annotations/
    nested = _rewrite(mevis['zip'], str(tmp_path / 'nested.zip'), rename=lambda n: f'results/{n}')
    problems = check_submission('mevis', nested, mevis['meta'])
    assert [p.kind for p in problems[:1]] == ['layout'] and 'inside the folder results/' in problems[0].message
    annotations = _rewrite(mevis['zip'], str(tmp_path / 'ann.zip'), rename=lambda n: f'Annotations/{n}')
    problems = check_submission('mevis', annotations, mevis['meta'])
    assert problems[0].kind == 'layout' and 'cd Annotations && zip -r ../submission.zip *' in problems[0].message
    # a member whose data does not match its CRC
    corrupt = str(tmp_path / 'corrupt.zip')
    shutil.copy(mevis['zip'], corrupt)
    with zipfile.ZipFile(corrupt) as zf:
        info = next(i for i in zf.infolist() if not i.is_dir() and i.compress_type == zipfile.ZIP_DEFLATED)
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size - 2
    with open(corrupt, 'r+b') as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    problems = check_submission('mevis', corrupt, mevis['meta'])
    assert any(p.kind in ('broken zip', 'unreadable PNG') and info.filename in p.message for p in problems)
    not_zip = str(tmp_path / 'x.zip')
    with open(not_zip, 'w') as f:
        f.write('not a zip')
    run = _run('mevis', not_zip, '--meta-expressions', mevis['meta'])
    assert run.returncode == 1 and 'not a zip:' in run.stdout
    run = _run('mevis', mevis['zip'], '--meta-expressions', str(tmp_path / 'missing.json'))
    assert run.returncode not in (0, 1) and 'missing.json' in run.stderr
    os.remove(not_zip)
