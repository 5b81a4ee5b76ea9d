"""RefYTVOSSubmissionMetric (soc_mm/evaluation/metrics/ref_ytvos_submission_metric.py): the submission zip's
layout, missing expressions, ids that would escape the submission directory (threaded writing:
test_submission_writer.py)."""
import json
import os.path as osp
import zipfile

import numpy as np
import pytest

import soc_mm  # noqa: F401
from rvos_metric_samples import make_sample, square
from soc_mm.evaluation import RefYTVOSSubmissionMetric

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_ref_ytvos_submission(tmp_path):
    gt = square(30, 40, 5, 5, 8, n=3)
    samples = [make_sample('vidA', '0', gt, gt), make_sample('vidA', '1', ~gt, gt),
               make_sample('vidB', '0', gt[:2], gt[:2], frame_ids=['00005', '00010', '00015'], valid_frame_idx=[0, 2])]
    meta = tmp_path / 'meta.json'
    meta.write_text(json.dumps({'videos': {'vidA': {'expressions': {'0': {}, '1': {}}},
                                           'vidB': {'expressions': {'0': {}}}}}))
    metric = RefYTVOSSubmissionMetric(output_dir=str(tmp_path / 'out'), meta_file=str(meta))
    metric.process({}, samples)
    assert metric.evaluate(3) == {}
    with zipfile.ZipFile(tmp_path / 'out' / 'submission.zip') as zf:
        names = zf.namelist()
        files = sorted(n for n in names if not n.endswith('/'))
        assert files == ['Annotations/vidA/0/00000.png', 'Annotations/vidA/0/00001.png', 'Annotations/vidA/0/00002.png',
                         'Annotations/vidA/1/00000.png', 'Annotations/vidA/1/00001.png', 'Annotations/vidA/1/00002.png',
                         'Annotations/vidB/0/00005.png', 'Annotations/vidB/0/00015.png']
        assert 'Annotations/' in names and 'Annotations/vidA/0/' in names
        from io import BytesIO

        from PIL import Image
        png = np.array(Image.open(BytesIO(zf.read('Annotations/vidA/1/00001.png'))))
        assert png.dtype == np.uint8 and png.shape == (30, 40)
        assert np.array_equal(png, np.where(~gt[1], 255, 0).astype(np.uint8))
    assert not osp.exists(tmp_path / 'out' / 'Annotations')  # keep_pngs=False
    # a missing expression refuses to zip
    metric = RefYTVOSSubmissionMetric(output_dir=str(tmp_path / 'out2'), meta_file=str(meta))
    metric.process({}, samples[:2])
    with pytest.raises(ValueError, match=r"missing in the predictions, e.g. \['vidB'\]"):
        metric.evaluate(2)


@pytest.mark.parametrize('field,value', [('video_id', '..'), ('video_id', '../escape'), ('exp_id', 'a/b'),
                                         ('frame_ids', ['../../x', 'b', 'c']), ('video_id', '')])
def test_ref_ytvos_submission_refuses_escaping_ids(tmp_path, field, value):
    gt = square(30, 40, 5, 5, 8, n=3)
    metric = RefYTVOSSubmissionMetric(output_dir=str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='outside the submission directory'):
        sample = make_sample('v', '0', gt, gt)
        sample[field] = value
        metric.process({}, [sample])
    assert not list((tmp_path).rglob('*.png'))
