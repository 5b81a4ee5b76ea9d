"""RVOSJFMetric (soc_mm/evaluation/metrics/rvos_jf_metric.py): J&F over videos, the Ref-DAVIS17 protocol,
overlapping objects merged by score, errors naming the sample."""
import json

import numpy as np
import pytest
import torch

import soc_mm  # noqa: F401
from rvos_metric_samples import make_sample, square
from soc_mm.evaluation import RVOSJFMetric, boundary_f_measure, merge_object_masks, region_similarity
from soc_mm.registry import METRICS

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_jf_metric_hand_computed_and_dedup():
    gt = square(48, 100, 10, 20, 10, n=2)
    perfect = make_sample('v0', '0', gt, gt)
    shifted = make_sample('v0', '1', np.roll(gt, 2, axis=2), gt)  # J = 2/3, F = 0.55 per frame
    metric = METRICS.build(dict(type='RVOSJFMetric'))
    metric.process({}, [perfect, shifted])
    metric.process({}, [shifted])  # a padded duplicate must not count twice
    out = metric.evaluate(3)
    assert out['rvos/J'] == pytest.approx((1 + 2 / 3) / 2)
    assert out['rvos/F'] == pytest.approx((1 + 0.55) / 2)
    assert out['rvos/J&F'] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 0.55) / 2) / 2)
    assert out['rvos/J-Recall'] == 1.0 and out['rvos/F-Recall'] == 1.0 and out['rvos/J-Decay'] == 0.0


def ref_davis_samples(swap_annotator=None):
    """One video, 2 objects x 4 annotators; exp id i refers to object i // 4 (annotator i % 4)."""
    objects = [square(30, 40, 3, 3, 8, n=2), square(30, 40, 15, 22, 10, n=2)]
    samples = []
    for i in range(8):
        obj, annotator = i // 4, i % 4
        pred_obj = 1 - obj if annotator == swap_annotator else obj
        pred = np.roll(objects[pred_obj], annotator, axis=2)  # annotator a: shift by a px
        samples.append(make_sample('v0', str(i), pred, objects[obj], annotator=annotator))
    return samples


def test_jf_metric_ref_davis_protocol():
    samples = ref_davis_samples()
    metric = RVOSJFMetric(ref_davis_protocol=True)
    metric.process({}, samples)
    out = metric.evaluate(len(samples))
    # disjoint, well-aligned predictions: the protocol equals the per-annotator mean over expressions
    per_annotator = []
    for a in range(4):
        items = [s for s in samples if s['annotator'] == a]
        js = [region_similarity(s['pred_masks'], s['ori_gt_masks']).mean() for s in items]
        fs = [boundary_f_measure(s['pred_masks'], s['ori_gt_masks']).mean() for s in items]
        per_annotator.append((np.mean(js) + np.mean(fs)) / 2)
        assert out[f'rvos/J&F_annotator{a}'] == pytest.approx(per_annotator[-1], abs=1e-12)
    assert out['rvos/J&F_annotator0'] == 1.0
    assert out['rvos/J&F'] == pytest.approx(np.mean(per_annotator), abs=1e-12)
    # annotator 0's expressions predict each other's object: the assignment swaps them back
    swapped = ref_davis_samples(swap_annotator=0)
    metric = RVOSJFMetric(ref_davis_protocol=True)
    metric.process({}, swapped)
    assert metric.evaluate(8)['rvos/J&F_annotator0'] == 1.0
    plain = RVOSJFMetric()
    plain.process({}, swapped[0::4])
    assert plain.evaluate(2)['rvos/J'] == 0.0
    # errors: an annotator without expressions; a sample without annotator
    metric = RVOSJFMetric(ref_davis_protocol=True)
    metric.process({}, samples[:3])
    with pytest.raises(ValueError, match=r'annotator\(s\) \[3\]'):
        metric.evaluate(3)
    with pytest.raises(ValueError, match="has no 'annotator'"):
        RVOSJFMetric(ref_davis_protocol=True).process({}, [make_sample('v9', '0', samples[0]['pred_masks'],
                                                                        samples[0]['ori_gt_masks'])])


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_ref_davis_protocol_rejects_non_finite_scores(bad):
    """A NaN score used to win every contested pixel (J&F 1.000 -> 0.125, no error)."""
    samples = ref_davis_samples()
    samples[5]['pred_scores'] = torch.tensor([0.7, bad])
    metric = RVOSJFMetric(ref_davis_protocol=True)
    with pytest.raises(ValueError, match=r"video_id='v0'.*exp_id='5'.*'pred_scores' has non-finite values.*\[1\]"):
        metric.process({}, samples)


def test_merge_object_masks_resolves_overlaps_by_score():
    masks = np.zeros((3, 2, 4, 4), bool)
    masks[0, :, :2] = True  # rows 0-1
    masks[1, :, 1:3] = True  # rows 1-2, overlaps object 0 on row 1
    scores = np.array([[0.9, 0.2], [0.5, 0.8], [0.1, 0.1]])
    merged = merge_object_masks(masks, scores)
    assert merged[0, 0, 1].all() and not merged[1, 0, 1].any()  # frame 0: object 0 scores higher
    assert merged[1, 1, 1].all() and not merged[0, 1, 1].any()  # frame 1: object 1 scores higher
    assert not merged[2].any() and (merged.sum(0) <= 1).all()
    assert np.array_equal(merged.any(0), masks.any(0))


def test_metric_bad_input_names_the_sample(tmp_path):
    gt = square(30, 40, 5, 5, 8, n=2)
    metric = RVOSJFMetric()
    with pytest.raises(ValueError, match=r"video_id='bad'.*2 predicted frames but 3 ground-truth"):
        metric.process({}, [make_sample('bad', '0', gt, np.concatenate([gt, gt[:1]]))])
    with pytest.raises(ValueError, match=r"video_id='bad'.*differ in shape"):
        metric.process({}, [make_sample('bad', '0', gt, gt[:, :, :-1])])
    with pytest.raises(ValueError, match=r"video_id='bad'.*not binary"):
        metric.process({}, [make_sample('bad', '0', gt.astype(np.float32) * 0.7, gt)])
    with pytest.raises(ValueError, match=r"video_id='bad'.*has no 'pred_masks'"):
        sample = make_sample('bad', '0', gt, gt)
        del sample['pred_masks']
        metric.process({}, [sample])
    with pytest.raises(ValueError, match=r"video_id='bad'.*evaluated frames"):
        metric.process({}, [make_sample('bad', '0', gt, gt, frame_ids=['a', 'b', 'c'])])
    with pytest.raises(ValueError, match=r"video_id='bad'.*ori_shape"):
        metric.process({}, [make_sample('bad', '0', gt, gt, ori_shape=(31, 40))])
    meta = tmp_path / 'meta_expressions.json'
    meta.write_text(json.dumps({'videos': {'v0': {'expressions': {'0': {}}}, 'v1': {'expressions': {'0': {}}}}}))
    metric = RVOSJFMetric(meta_file=str(meta))
    metric.process({}, [make_sample('v0', '0', gt, gt)])
    with pytest.raises(ValueError, match=r"missing in the predictions, e.g. \['v1'\]"):
        metric.evaluate(1)
