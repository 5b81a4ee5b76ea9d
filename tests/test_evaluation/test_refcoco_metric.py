"""RefCOCOSegMetric (soc_mm/evaluation/metrics/refcoco_metric.py)."""
import json

import numpy as np
import pytest

import soc_mm  # noqa: F401
from rvos_metric_samples import a2d_samples
from soc_mm.evaluation import A2DSentencesMetric
from soc_mm.registry import METRICS

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_refcoco_metric_int_image_ids(tmp_path):
    from pycocotools import mask as mask_utils
    samples = []
    images, annotations = [], []
    for i, s in enumerate(a2d_samples(3)):
        s['valid_frame_idx'] = [1]
        s['img_id'] = 100 + i
        for key in ('pred_masks', 'ori_gt_masks', 'pred_scores'):
            s[key] = s[key][1:2]
        s['pred_instances'] = {k: v[:, 1:2] for k, v in s['pred_instances'].items()}
        rle = mask_utils.encode(np.asfortranarray(s['ori_gt_masks'][0].numpy().astype(np.uint8)))
        rle['counts'] = rle['counts'].decode()
        images.append(dict(id=100 + i, height=24, width=40))
        annotations.append(dict(id=i + 1, image_id=100 + i, category_id=1, segmentation=rle, iscrowd=0,
                                area=float(mask_utils.area(rle)), bbox=mask_utils.toBbox(rle).tolist()))
        samples.append(s)
    ann_file = tmp_path / 'instances_refcoco_val.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=annotations, categories=[dict(id=1, name='o')])))
    metric = METRICS.build(dict(type='RefCOCOSegMetric', ann_file=str(ann_file)))
    metric.process({}, samples)
    out = metric.evaluate(3)
    in_memory = A2DSentencesMetric()
    in_memory.process({}, samples)
    ref = in_memory.evaluate(3)
    assert {k.split('/')[1]: v for k, v in out.items()} == {k.split('/')[1]: v for k, v in ref.items()}
