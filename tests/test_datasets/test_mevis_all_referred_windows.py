"""MeViSAllReferredWindowsDataset: SOC++'s MeViS training windows (consecutive windows in which EVERY referred
object appears), compared with the rule written out on the generator's manifest, and its errors."""
import json
import logging
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.ref_youtube_vos import sliding_windows
from soc_mm.registry import DATASETS
from soc_mm.structures.mask import encode_mask

init_default_scope('soc_mm')
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')

T = 4
H, W = 32, 40
PIPELINE = [dict(type='LoadRVOSFrames'), dict(type='LoadRLEMasks'), dict(type='PackRVOSInputs'),
            dict(type='MergeReferredObjects')]


def build(root, type='MeViSAllReferredWindowsDataset', **kwargs):
    cfg = dict(type=type, data_root=root, split='train', num_frames=T, pipeline=PIPELINE)
    if type == 'MeViSDataset':
        cfg['frame_sampling'] = 'consecutive'
    return DATASETS.build(dict(cfg, **kwargs))


def windows_of(dataset):
    return sorted((i['video_id'], i['exp_id'], tuple(i['frame_ids']))
                  for i in (dataset.get_data_info(k) for k in range(len(dataset))))


def expected_windows(manifest, rule):
    """SOC++'s loader (``rule=all``) / SOC's (``rule=any``): each expression's consecutive windows of T frames
    (the last completed), kept when all / any of its referred objects is visible on one of the window's
    frames; an expression with no referred object keeps every window."""
    expected = []
    for vid, video in manifest['train'].items():
        for exp_id, exp in video['expressions'].items():
            for window in sliding_windows(video['frames'], T):
                seen = [set(video['objects'][str(o)]['frames']) & set(window) for o in exp['obj_id']]
                if not exp['obj_id'] or rule(seen):
                    expected.append((vid, exp_id, tuple(window)))
    return sorted(expected)


@pytest.fixture(scope='module')
def mevis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mevis'))
    manifest = synthetic.generate_mevis(root, num_train=6, num_valid_u=1, num_valid=1, num_frames=10, size=(H, W),
                                        exit_prob=0.8, seed=2)
    return root, manifest


def test_every_referred_object_appears_in_every_kept_window(mevis):
    root, manifest = mevis
    dataset = build(root)
    assert windows_of(dataset) == expected_windows(manifest, all)
    # the rule matters on this data: SOC's rule (any referred object) keeps more windows
    soc = build(root, type='MeViSDataset')
    assert windows_of(soc) == expected_windows(manifest, any)
    assert set(windows_of(dataset)) < set(windows_of(soc))
    # every sample of a multi-object expression is one merged target, visible in the window
    multi = [k for k in range(len(dataset)) if len(dataset.get_data_info(k)['anno_ids']) > 1]
    assert multi
    for k in multi[:5]:
        out = dataset[k]
        gt = out['data_samples'].gt_instances
        assert out['data_samples'].metainfo['ref_inst_idx'] == [0] and gt.masks.shape == (1, T, H, W)
        assert gt.visible[0].any()


def test_no_target_expressions_keep_every_window(mevis):
    root, manifest = mevis
    dataset = build(root)
    kept = windows_of(dataset)
    for vid, video in manifest['train'].items():
        for exp_id, exp in video['expressions'].items():
            if not exp['obj_id']:
                for window in sliding_windows(video['frames'], T):
                    assert (vid, exp_id, tuple(window)) in kept


def test_a_non_null_but_empty_mask_is_not_an_appearance(tmp_path):
    """The loader looks for the object's pixels: an RLE that decodes to an empty mask does not count."""
    root = str(tmp_path / 'mevis')
    manifest = synthetic.generate_mevis(root, num_train=2, num_valid_u=0, num_valid=0, num_frames=8, size=(H, W),
                                        exit_prob=0.0, seed=4)
    vid, exp_id, exp = next((v, e, x) for v, video in sorted(manifest['train'].items())
                            for e, x in video['expressions'].items() if len(x['anno_id']) == 2)
    path = osp.join(root, 'train', 'mask_dict.json')
    with open(path) as f:
        mask_dict = json.load(f)
    empty = encode_mask(np.zeros((H, W), bool))
    frames = manifest['train'][vid]['frames']
    first = sliding_windows(frames, T)[0]
    for t in range(len(first)):  # the second object: empty RLEs (not null) over the whole first window
        mask_dict[str(exp['anno_id'][1])][t] = empty
    with open(path, 'w') as f:
        json.dump(mask_dict, f)
    kept = windows_of(build(root))
    assert (vid, exp_id, tuple(first)) not in kept
    assert (vid, exp_id, tuple(sliding_windows(frames, T)[1])) in kept
    assert (vid, exp_id, tuple(first)) in windows_of(build(root, type='MeViSDataset'))  # SOC's: first is kept


def test_skipped_windows_are_logged(mevis):
    root, manifest = mevis
    logger = MMLogger.get_current_instance()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    handler = Keep()
    logger.addHandler(handler)
    try:
        dataset = build(root)
    finally:
        logger.removeHandler(handler)
    soc_kept = len(expected_windows(manifest, any))
    skipped = soc_kept - len(dataset)
    assert any(re.search(rf'MeViSAllReferredWindowsDataset: skipped {skipped} of {soc_kept} windows where some '
                         r'referred object never appears \(as SOC\+\+\)', r) for r in records), records


def test_evaluation_splits_are_whole_videos(mevis):
    root, manifest = mevis
    for split in ('valid_u', 'valid'):
        dataset = build(root, split=split, load_gt=False, pipeline=[])
        ref = build(root, type='MeViSDataset', split=split, load_gt=False, pipeline=[])
        assert windows_of(dataset) == windows_of(ref)
        assert all(len(dataset.get_data_info(k)['frame_ids']) == len(manifest[split][dataset.get_data_info(k)[
            'video_id']]['frames']) for k in range(len(dataset)))


def test_bad_options(mevis):
    root, _ = mevis
    with pytest.raises(ValueError, match=re.escape("MeViSAllReferredWindowsDataset: frame_sampling must be "
                                                   "'consecutive' (SOC++'s fixed windows")):
        build(root, frame_sampling='global')
    with pytest.raises(ValueError, match=re.escape('MeViSAllReferredWindowsDataset: the train split needs its masks '
                                                   '(load_gt=False given)')):
        build(root, load_gt=False)
