"""A2DSentencesMetric (soc_mm/evaluation/metrics/a2d_sentences_metric.py) vs pycocotools, SOC's way; the top
mask and errors."""
import json

import numpy as np
import pytest
import torch

import soc_mm  # noqa: F401
from rvos_metric_samples import a2d_samples
from soc_mm.evaluation import A2DSentencesMetric

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def pycocotools_reference(gt_json, predictions):
    """mAP and IoU metrics computed directly with pycocotools, SOC's way."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_json)
        coco_dt = coco_gt.loadRes(predictions)
        ev = COCOeval(coco_gt, coco_dt, iouType='segm')
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ious, inter_sum, union_sum = [], 0, 0
    for img_id in coco_gt.imgs:
        gt = mask_utils.decode(coco_gt.imgToAnns[img_id][0]['segmentation'])
        best = sorted(coco_dt.imgToAnns[img_id], key=lambda a: a['score'])[-1]
        pred = mask_utils.decode(best['segmentation'])
        inter, union = torch.tensor(pred & gt).float().sum(), torch.tensor(pred | gt).float().sum()
        ious.append(((inter + 1e-6) / (union + 1e-6)).item())
        inter_sum += inter.item()
        union_sum += union.item()
    ref = dict(zip(('mAP', 'AP50', 'AP75'), ev.stats[:3]))
    ref.update({f'P@{k}': np.mean(np.array(ious) > k) for k in (0.5, 0.6, 0.7, 0.8, 0.9)})
    ref.update(overall_iou=inter_sum / union_sum, mean_iou=np.mean(ious))
    return ref


def test_a2d_metric_equals_pycocotools(tmp_path):
    from pycocotools import mask as mask_utils
    samples = a2d_samples()
    samples[0]['pred_instances']['masks'][:, 0] = False  # an all-empty frame
    images, annotations, predictions = [], [], []
    for s in samples:
        for t, frame in enumerate(s['frame_ids']):
            img_id = f"v_{s['video_id']}_f_{frame}_i_{s['exp_id']}"
            s.setdefault('coco_img_ids', []).append(img_id)
            rle = mask_utils.encode(np.asfortranarray(s['ori_gt_masks'][t].numpy().astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            images.append(dict(id=img_id, height=24, width=40))
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id, category_id=1, segmentation=rle,
                                    area=float(mask_utils.area(rle)), bbox=mask_utils.toBbox(rle).tolist(),
                                    iscrowd=0))
            for q in range(3):
                m = s['pred_instances']['masks'][q, t].numpy().astype(np.uint8)
                score = s['pred_instances']['scores'][q, t].item()
                predictions.append(dict(image_id=img_id, category_id=1, score=score,
                                        segmentation=mask_utils.encode(np.asfortranarray(m))))
    gt_json = tmp_path / 'gt.json'
    gt_json.write_text(json.dumps(dict(images=images, annotations=annotations,
                                       categories=[dict(id=1, name='dummy_class')])))
    ref = pycocotools_reference(str(gt_json), predictions)
    assert 0 < ref['mAP'] < 1
    for ann_file in (str(gt_json), None):  # GT json and GT built in memory give the same numbers
        metric = A2DSentencesMetric(ann_file=ann_file)
        metric.process({}, samples)
        out = metric.evaluate(len(samples))
        for key, value in ref.items():
            assert out[f'a2d/{key}'] == value, (ann_file, key)


def test_a2d_metric_top_mask_and_errors(tmp_path):
    samples = a2d_samples(2)
    # without pred_instances: pred_masks is the top mask and the only detection
    for s in samples:
        del s['pred_instances']
    metric = A2DSentencesMetric(metric='iou')
    metric.process({}, samples)
    out = metric.evaluate(2)
    inter = sum(int((s['pred_masks'][t] & s['ori_gt_masks'][t]).sum()) for s in samples for t in range(3))
    union = sum(int((s['pred_masks'][t] | s['ori_gt_masks'][t]).sum()) for s in samples for t in range(3))
    assert out['a2d/overall_iou'] == inter / union and 'a2d/mAP' not in out
    with pytest.raises(FileNotFoundError, match='nope.json'):
        A2DSentencesMetric(ann_file=str(tmp_path / 'nope.json'))
    bad = a2d_samples(1)[0]
    bad['pred_instances']['scores'] = bad['pred_instances']['scores'][:, :2]
    with pytest.raises(ValueError, match="video_id='video0'.*pred_instances"):
        A2DSentencesMetric().process({}, [bad])
    metric = A2DSentencesMetric()
    metric.process({}, a2d_samples(1))
    gt_json = tmp_path / 'gt.json'
    gt_json.write_text(json.dumps(dict(images=[dict(id='other', height=24, width=40)], annotations=[],
                                       categories=[dict(id=1, name='x')])))
    metric = A2DSentencesMetric(ann_file=str(gt_json))
    with pytest.raises(ValueError, match="no 'coco_img_ids'"):
        metric.process({}, a2d_samples(1))
    sample = a2d_samples(1)[0]
    sample['coco_img_ids'] = ['a', 'b', 'c']
    metric.process({}, [sample])
    with pytest.raises(ValueError, match=r"have no prediction, e.g. \['other'\]"):
        metric.evaluate(1)
