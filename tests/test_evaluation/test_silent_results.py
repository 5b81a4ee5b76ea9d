"""Inputs the evaluation code used to score silently wrong: 16-bit prediction PNGs (scored as the official
script reads them, with a warning naming the file), two A2D queries with the same ids, a submission run
deleting files it did not write, and ``eval_mevis.py --out`` refused only after the whole evaluation."""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import warnings
import zipfile

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, subprocess_env
from soc_mm.evaluation import A2DSentencesMetric, evaluate_mevis_predictions
from soc_mm.evaluation.functional.mevis import PredictionBitDepthWarning, png_bit_depth, read_mask_png
from soc_mm.registry import METRICS
from soc_mm.structures.mask import encode_mask

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _mevis_split(root, gt, frames=('00000', '00001')):
    """One video, one expression referring to object 1 (masks ``gt`` bool [T, H, W])."""
    meta = {'videos': {'v': {'frames': list(frames), 'expressions': {'0': {'exp': 'the square', 'anno_id': [1]}}}}}
    mask_dict = {'1': [encode_mask(m) for m in gt]}
    paths = osp.join(root, 'meta.json'), osp.join(root, 'mask_dict.json')
    for path, data in zip(paths, (meta, mask_dict)):
        with open(path, 'w') as f:
            json.dump(data, f)
    return paths


# ------------------------------------------------------------------------------------------ 16-bit PNGs
def test_16_bit_png_keeps_the_official_number_and_warns(tmp_path, monkeypatch):
    import soc_mm.evaluation.functional.mevis as mevis
    monkeypatch.setattr(mevis, '_bit_depth_warnings', [0])
    gt = np.zeros((2, 12, 16), bool)
    gt[:, 3:9, 4:12] = True
    meta, mask_dict = _mevis_split(str(tmp_path), gt)
    pred_dir = tmp_path / 'pred' / 'v' / '0'
    pred_dir.mkdir(parents=True)
    for t in range(2):  # object = 1 in a 16-bit PNG: the masks equal the ground truth
        assert cv2.imwrite(str(pred_dir / f'{t:05d}.png'), gt[t].astype(np.uint16))
    assert png_bit_depth(str(pred_dir / '00000.png')) == 16
    with pytest.warns(PredictionBitDepthWarning) as record:
        result = evaluate_mevis_predictions(str(tmp_path / 'pred'), meta, mask_dict)
    # the official script (cv2.IMREAD_GRAYSCALE) reads these as empty masks: J = 0, F = 0
    official = cv2.imread(str(pred_dir / '00000.png'), cv2.IMREAD_GRAYSCALE)
    assert not official.any()
    assert result.metrics == {'J': 0.0, 'F': 0.0, 'J&F': 0.0}
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert messages[0].startswith(f'prediction {pred_dir / "00000.png"} is a 16-bit PNG: scored as read in 8-bit '
                                  'grayscale, as the official MeViS script reads it')
    assert f'the file holds {int(gt[0].sum())} non-zero pixels (values 0..1), read as 0 object pixels' in messages[0]
    # 8-bit PNGs of the same masks: the number the user meant, no warning
    for t in range(2):
        assert cv2.imwrite(str(pred_dir / f'{t:05d}.png'), gt[t].astype(np.uint8) * 255)
    with warnings.catch_warnings():
        warnings.simplefilter('error', PredictionBitDepthWarning)
        assert evaluate_mevis_predictions(str(tmp_path / 'pred'), meta, mask_dict).metrics['J&F'] == 1.0


def test_16_bit_warnings_are_bounded(tmp_path, monkeypatch):
    import soc_mm.evaluation.functional.mevis as mevis
    monkeypatch.setattr(mevis, '_bit_depth_warnings', [0])
    monkeypatch.setattr(mevis, 'MAX_BIT_DEPTH_WARNINGS', 3)
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.full((4, 4), 300, np.uint16))  # 300 >> 8 = 1: read as object
    with pytest.warns(PredictionBitDepthWarning) as record:
        for _ in range(6):
            assert read_mask_png(path).all()
    assert len(record) == 3
    assert 'further 16-bit PNGs are not named' in str(record[-1].message)
    assert 'the file holds 16 non-zero pixels (values 300..300), read as 16 object pixels' in str(record[0].message)


# ------------------------------------------------------------------------------------------ A2D duplicate ids
def _a2d_sample(expression, seed):
    rng = np.random.default_rng(seed)
    pred = torch.from_numpy(rng.random((1, 8, 10)) < 0.5)
    gt = torch.from_numpy(rng.random((1, 8, 10)) < 0.5)
    return dict(video_id='vid', exp_id='3_17', expression=expression, frame_ids=['00017'], valid_frame_idx=None,
                ori_shape=(8, 10), pred_masks=pred, pred_scores=torch.ones(1), ori_gt_masks=gt,
                img_id='v_vid_f_17_i_3')


def test_a2d_two_queries_with_the_same_ids_are_an_error():
    metric = A2DSentencesMetric()
    metric.process({}, [_a2d_sample('the man running', 0), _a2d_sample('a man in a red shirt', 1)])
    with pytest.raises(ValueError, match=re.escape(
            "A2DSentencesMetric: two different samples have the same ids ('vid', '3_17', '00017'): expression "
            "'the man running' and 'a man in a red shirt'; only one of them would be scored") + '.*'
            + re.escape('two queries of one (video, instance) in a2d_annotation.txt cannot be told apart')):
        metric.evaluate(2)
    # a padded sampler repeats the same sample: counted once, as before
    metric = A2DSentencesMetric()
    metric.process({}, [_a2d_sample('the man running', 0), _a2d_sample('the man running', 0)])
    once = A2DSentencesMetric()
    once.process({}, [_a2d_sample('the man running', 0)])
    assert metric.evaluate(2) == once.evaluate(1)


# ------------------------------------------------------------------------------------------ submission cleanup
def _submission_samples():
    rng = np.random.default_rng(0)
    return [dict(video_id=f'video_{v}', exp_id=str(e), frame_ids=['00000', '00005'], valid_frame_idx=None,
                 ori_shape=(6, 8), pred_masks=torch.from_numpy(rng.random((2, 6, 8)) < 0.5))
            for v in range(2) for e in range(2)]


@pytest.mark.parametrize('metric_type', ['RefYTVOSSubmissionMetric', 'MeViSSubmissionMetric'])
def test_submission_removes_only_what_it_wrote(tmp_path, metric_type):
    annotations = tmp_path / 'Annotations'
    kept = [annotations / 'README.txt', annotations / 'other_video' / '0' / '00000.png',
            annotations / 'video_0' / '0' / 'notes.txt', annotations / 'video_1' / 'extra' / '00000.png']
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'user file')
    (annotations / 'empty_user_folder').mkdir()
    metric = METRICS.build(dict(type=metric_type, output_dir=str(tmp_path), keep_pngs=False))
    metric.process({}, _submission_samples())
    assert metric.evaluate(4) == {}
    with zipfile.ZipFile(tmp_path / 'submission.zip') as zf:
        assert sum(n.endswith('.png') for n in zf.namelist()) == 8
    for path in kept:
        assert path.read_bytes() == b'user file', path
    assert (annotations / 'empty_user_folder').is_dir()
    left = sorted(osp.relpath(osp.join(d, f), annotations) for d, _, files in os.walk(annotations) for f in files)
    assert left == sorted(osp.relpath(p, annotations) for p in kept)  # every written PNG removed
    assert not (annotations / 'video_0' / '1').exists() and not (annotations / 'video_1' / '0').exists()
    # nothing there before: the whole Annotations folder goes
    fresh = tmp_path / 'fresh'
    metric = METRICS.build(dict(type=metric_type, output_dir=str(fresh)))
    metric.process({}, _submission_samples())
    metric.evaluate(4)
    assert sorted(os.listdir(fresh)) == ['submission.zip']


# ------------------------------------------------------------------------------------------ eval_mevis --out
@pytest.mark.parametrize('kind', ['folder', 'under_a_file'])
def test_eval_mevis_out_checked_before_evaluating(tmp_path, kind):
    """The tool refuses an --out it cannot write before evaluating: the meta file does not exist, and the
    error names --out, not the missing meta file (which the evaluation would report first)."""
    if kind == 'folder':
        out = tmp_path / 'scores'
        out.mkdir()
        expected = f'eval_mevis.py: error: --out {out} is a folder; expected a file path'
    else:
        (tmp_path / 'file').write_text('x')
        out = tmp_path / 'file' / 'scores.json'
        expected = f'eval_mevis.py: error: --out folder {tmp_path / "file"} is a file'
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'eval_mevis.py'),
                           str(tmp_path), '--meta-expressions', str(tmp_path / 'm.json'), '--mask-dict',
                           str(tmp_path / 'd.json'), '--out', str(out)],
                          capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr
    assert 'm.json' not in proc.stderr and proc.stdout == ''  # refused before the evaluation ran


@pytest.mark.parametrize('ext', ['.tiff', '.pgm', '.jpg'])
def test_mask_readers_refuse_files_that_are_not_pngs(tmp_path, ext):
    """OpenCV decodes any format it knows whatever the file's name: a TIFF or PGM named ``.png`` would be
    scored without its size or bit depth being checked (a 16-bit TIFF scores silently as the 8-bit reading,
    a deflated TIFF declaring 12000 x 12000 pixels decodes to GBs). Every mask reader refuses it, naming it."""
    from soc_mm.evaluation.functional.long_rvos import read_png_mask
    from soc_mm.evaluation.functional.revos import RevosPredictionError, read_prediction_png
    other = str(tmp_path / f'mask{ext}')
    assert cv2.imwrite(other, np.full((8, 8), 300 if ext != '.jpg' else 255,
                                      np.uint16 if ext != '.jpg' else np.uint8))
    path = str(tmp_path / '00000.png')
    os.replace(other, path)
    message = f'unreadable prediction {path}: not a PNG file'
    assert cv2.imread(path, cv2.IMREAD_GRAYSCALE) is not None  # what the official scripts would score
    with pytest.raises(ValueError, match=re.escape(message)):
        read_mask_png(path)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_png_mask(path)
    with pytest.raises(RevosPredictionError, match=re.escape(message)) as error:
        read_prediction_png(path)
    assert error.value.kind == 'unreadable_png'


def test_revos_reader_warns_about_16_bit_pngs(tmp_path, monkeypatch):
    import soc_mm.evaluation.functional.mevis as mevis
    from soc_mm.evaluation.functional.revos import read_prediction_png
    monkeypatch.setattr(mevis, '_bit_depth_warnings', [0])
    path = str(tmp_path / '00000.png')
    assert cv2.imwrite(path, np.ones((6, 6), np.uint16))
    with pytest.warns(PredictionBitDepthWarning, match=re.escape(f'prediction {path} is a 16-bit PNG: scored as '
                                                                 'read in 8-bit grayscale, as the official ReVOS')):
        image = read_prediction_png(path)
    assert image.dtype == np.uint8 and not image.any()  # as cv2.IMREAD_GRAYSCALE reads it
