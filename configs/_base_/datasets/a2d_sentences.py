# A2D-Sentences: a window of `num_frames` frames centred on each annotated frame; only that frame
# is supervised and evaluated (valid_frame_idx). Validation = the test split (as SOC).
# Dataset layout: soc_mm.datasets.a2d_sentences.A2D_LAYOUT.
data_root = 'data/a2d_sentences/'
# COCO-format ground truth of the test split (tools/dataset_converters/create_coco_gt.py, SOC's
# a2d_sentences_test_annotations_in_coco_format.json); None = built in memory from the masks.
coco_gt_file = None
# sample-list caches (written once, read afterwards; None = re-read the .h5 files every run)
train_cache_file = data_root + 'train_samples_cache.json'
test_cache_file = data_root + 'test_samples_cache.json'
num_frames = 8                # official -ws 8
train_short_size, train_max_size = 320, 576
eval_short_size, eval_max_size = 320, 576
flip_prob = 0.3085            # SOC flips when torch.randn(1) > 0.5, i.e. P = 0.3085
dataset_type = 'A2DSentencesDataset'

train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadA2DInstanceMasks'),
    dict(type='RVOSRandomFlip', prob=flip_prob),
    dict(type='RVOSRandomResize', short_side=[train_short_size], max_size=train_max_size),
    dict(type='PackRVOSInputs'),
]
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadA2DInstanceMasks'),
    dict(type='RVOSRandomResize', short_side=[eval_short_size], max_size=eval_max_size),
    dict(type='PackRVOSInputs', pack_ori_gt_masks=True),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', num_frames=num_frames,
                 cache_file=train_cache_file, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),  # no padded duplicates
    dataset=dict(type=dataset_type, data_root=data_root, split='test', num_frames=num_frames,
                 cache_file=test_cache_file, pipeline=test_pipeline))
test_dataloader = val_dataloader
# mAP over every query's mask (the model fills pred_instances: test_cfg.return_all_queries=True)
val_evaluator = dict(type='A2DSentencesMetric', ann_file=coco_gt_file, metric=['iou', 'map'])
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
