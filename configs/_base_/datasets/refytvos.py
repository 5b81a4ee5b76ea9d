# Refer-YouTube-VOS: train on windows of `num_frames` frames, test on the whole "valid" videos.
# The valid split has no public masks: the test evaluator writes the server's submission zip.
# Dataset layout: soc_mm.datasets.ref_youtube_vos.REF_YTVOS_LAYOUT.
data_root = 'data/refer_youtube_vos/'
submission_dir = 'work_dirs/refytvos_submission/'  # Annotations/ + submission.zip are written here
# object-presence cache of the train masks (written once; None = rescan every PNG every run)
presence_cache = data_root + 'train_presence_cache.json'
num_frames = 8                # training window (official -ws 8)
train_short_size, train_max_size = 360, 640
eval_short_size, eval_max_size = 360, 640
flip_prob = 0.3085            # SOC flips when torch.randn(1) > 0.5, i.e. P = 0.3085
dataset_type = 'RefYouTubeVOSDataset'

train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadPaletteMasks'),
    dict(type='RVOSRandomFlip', prob=flip_prob),  # also swaps left/right in the expression
    dict(type='RVOSRandomResize', short_side=[train_short_size], max_size=train_max_size),
    dict(type='PackRVOSInputs'),
]
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='RVOSRandomResize', short_side=[eval_short_size], max_size=eval_max_size),
    dict(type='PackRVOSInputs'),
]

train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        num_frames=num_frames,
        with_category=True,  # 65 category labels; used when the head has num_classes=65
        presence_cache=presence_cache,
        pipeline=train_pipeline))
test_dataloader = dict(
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
        split='valid',
        load_gt=False,
        pipeline=test_pipeline))
test_evaluator = dict(type='RefYTVOSSubmissionMetric', output_dir=submission_dir)
test_cfg = dict(type='TestLoop')

# No validation during training: the valid split has no public ground truth.
val_dataloader = None
val_evaluator = None
val_cfg = None
