# Ref-DAVIS17 (evaluation only): whole valid videos, one sample per expression; J&F per annotator
# set (exp_id % 4) with the DAVIS "unsupervised" matching, averaged over the 4 sets (as SOC).
# Dataset layout: soc_mm.datasets.ref_davis.REF_DAVIS_LAYOUT.
data_root = 'data/ref_davis/'
eval_short_size, eval_max_size = 360, 640

test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadPaletteMasks'),
    dict(type='RVOSRandomResize', short_side=[eval_short_size], max_size=eval_max_size),
    dict(type='PackRVOSInputs', pack_ori_gt_masks=True),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    # the expressions of one video in one batch: SOC runs the video backbone once for all of them
    batch_sampler=dict(type='RVOSVideoBatchSampler', max_expressions=4),
    dataset=dict(type='RefDAVIS17Dataset', data_root=data_root, split='valid', pipeline=test_pipeline))
test_evaluator = dict(type='RVOSJFMetric', ref_davis_protocol=True, num_annotators=4)
test_cfg = dict(type='TestLoop')
