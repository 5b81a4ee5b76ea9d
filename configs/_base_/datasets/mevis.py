# MeViS (ICCV 2023; v2 TPAMI 2025): motion expressions; one expression may refer to several objects (v2: or
# to none). Train on clips of `num_frames` frames spread over the whole video (MeViSDataset
# frame_sampling='global', as the MeViS baselines' loader: a motion expression needs to see the motion),
# evaluate J&F on the whole "valid_u" videos (public masks; MeViSMetric reads them from mask_dict.json,
# exactly as the official tools/eval_mevis.py). The "valid" split has no public masks: its submission
# zip is written by the `*_test-valid.py` config. Dataset layout: soc_mm.datasets.mevis.MEVIS_LAYOUT.
data_root = 'data/mevis/'
submission_dir = 'work_dirs/mevis_submission/'  # Annotations/ + submission.zip of "valid" are written here
valid_meta_file = data_root + 'valid/meta_expressions.json'  # the submission must cover every expression
num_frames = 8                # clip length: SOC's (-ws 8) and DsHmp's (SAMPLING_FRAME_NUM 8; LMPM, ReferDINO: 6)
frame_sampling = 'global'
train_short_size, train_max_size = 360, 640   # SOC's Ref-YouTube-VOS sizes
eval_short_size, eval_max_size = 360, 640
flip_prob = 0.3085            # SOC flips when torch.randn(1) > 0.5, i.e. P = 0.3085
dataset_type = 'MeViSDataset'

train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRLEMasks'),
    # also swaps left/right in the expression: "moving to the left" stays true
    dict(type='RVOSRandomFlip', prob=flip_prob),
    dict(type='RVOSRandomResize', short_side=[train_short_size], max_size=train_max_size),
    dict(type='PackRVOSInputs'),
]
# no masks: MeViSMetric reads the ground truth from the split's mask_dict.json
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='RVOSRandomResize', short_side=[eval_short_size], max_size=eval_max_size),
    dict(type='PackRVOSInputs'),
]

train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based schedules
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        num_frames=num_frames,
        frame_sampling=frame_sampling,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    # round_up=False: no padded duplicates, every expression is predicted exactly once
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    # the expressions of one video in one batch: SOC runs the video backbone once for all of them
    batch_sampler=dict(type='RVOSVideoBatchSampler', max_expressions=4),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='valid_u',
        load_gt=False,  # the metric reads mask_dict.json itself
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='MeViSMetric',
    meta_file=data_root + 'valid_u/meta_expressions.json',
    mask_dict_file=data_root + 'valid_u/mask_dict.json')
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
