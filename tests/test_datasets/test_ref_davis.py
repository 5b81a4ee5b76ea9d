"""RefDAVIS17Dataset (soc_mm/datasets/ref_davis.py) on a generated mini-dataset in the real on-disk format."""
import os.path as osp

import numpy as np
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from synthetic_datasets import EVAL_PALETTE, build, read_ids

init_default_scope('soc_mm')


def test_ref_davis(tmp_path):
    root = str(tmp_path / 'davis')
    manifest = synthetic.generate_ref_davis(root, num_valid=2, num_frames=6, size=(40, 48))
    ds = build(dict(type='RefDAVIS17Dataset', data_root=root, pipeline=EVAL_PALETTE))
    assert len(ds) == sum(len(v['expressions']) for v in manifest['valid'].values())
    annotators = [ds.get_data_info(i)['annotator'] for i in range(len(ds))]
    assert sorted(set(annotators)) == [0, 1, 2, 3]
    out = ds[6]
    meta = out['data_samples'].metainfo
    v = manifest['valid'][meta['video_id']]
    exp = v['expressions'][meta['exp_id']]
    assert meta['annotator'] == int(meta['exp_id']) % 4 and meta['expression'] == exp['exp']
    assert out['inputs'].shape[0] == 6 and out['data_samples'].ori_gt_masks.shape == (6, 40, 48)
    for t, fid in enumerate(v['frames']):
        ids = read_ids(osp.join(root, 'valid', 'Annotations', meta['video_id'], f'{fid}.png'))
        assert np.array_equal(out['data_samples'].ori_gt_masks[t].numpy(), ids == int(exp['obj_id']))
