# The long-video benchmark (docs/long_videos.md, tools/demo/run_long_video_demo.py): the tiny SOC of the MeViS
# demo (soc_tiny_synthetic_mevis.py: frames decoded in order, motion-aware VOC; the descriptions here are about
# motion too) trained from scratch on synthetic Long-RVOS (long videos of moving shapes that leave and come back,
# two look-alikes per video), CPU. Held-out videos are read as consecutive clips of clip_len frames, each
# clip's object chosen by top-1 (one object per Long-RVOS description); run_long_video_demo.py compares SOC's
# per-clip choice with test_cfg.link_clips and test_cfg.presence_thr on the same checkpoint. Prepare
# (run_long_video_demo.py does both):
#   python -c "from soc_mm.datasets.synthetic_long_rvos import generate_long_rvos; \
#       generate_long_rvos('data/synthetic_long_video', num_train=300, num_valid=30, num_test=0, num_frames=240, \
#                          size=(64, 64), absence_range=(0.3, 0.6))"
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_long_video/train/meta_expressions.json \
#       --out data/synthetic_long_video/tiny_roberta
_base_ = ['./soc_tiny_synthetic_mevis.py']

data_root = 'data/synthetic_long_video/'
text_encoder_path = data_root + 'tiny_roberta'  # made by tools/misc/make_tiny_text_encoder.py
# Training clips: 6 frames 4 apart from a random start (LongRVOSDataset 'window', 21 frames, about a held-out
# clip of 24), at least one of them showing the object: the query slots follow each object from frame to frame
# and its motion is seen. The official loader's rule ('random': 6 frames drawn from the whole 240) shows objects
# jump and look-alikes swap places between frames; trained that way the model told motions apart at chance
# level (per-clip J&F 0.530 against 0.602, motion-only vIoU 0.256 against 0.353: docs/long_videos.md).
num_frames = 6
frame_sampling = 'window'
frame_stride = 4
# held-out videos: consecutive clips of 24 frames (10 clips of a 240-frame video)
clip_len = 24

# PresenceSOCHead (not SOC's): SOC's head plus a per-frame presence branch on the frame query alone and its
# video query, which test_cfg.presence_thr thresholds (SOC's frame score barely tells absent frames apart:
# docs/long_videos.md); the per-clip choice of run_long_video_demo.py does not read it.
model = dict(text_encoder=dict(model_path=text_encoder_path),
             bbox_head=dict(type='PresenceSOCHead'),
             test_cfg=dict(_delete_=True, object_selection='top1', clip_len=clip_len))

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadLongRVOSMasks'),
    # the descriptions name no side; a flip keeps "horizontally", "up and down" and "diagonally" true
    dict(type='RVOSRandomFlip', prob=0.5),
    dict(type='PackRVOSInputs'),
]
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='PackRVOSInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='LongRVOSDataset', data_root=data_root, split='train', num_frames=num_frames,
                 frame_sampling=frame_sampling, frame_stride=frame_stride, pipeline=train_pipeline))
test_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    batch_sampler=dict(type='RVOSVideoBatchSampler', max_expressions=8),
    dataset=dict(_delete_=True, type='LongRVOSDataset', data_root=data_root, split='valid', load_gt=False,
                 pipeline=test_pipeline))
# ------------------------------------------------------------------ schedule
# 7000 iterations: with 4000 the model only began to follow the text near the end (docs/long_videos.md). The
# base's schedule is rebuilt from this count (a variable of a _base_ file is not re-read by its dicts).
max_iters = 7000
base_lr = 3e-4
warmup_iters = 200
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=base_lr * 0.01, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))

test_evaluator = [
    dict(type='LongRVOSMetric', meta_file=data_root + 'valid/meta_expressions.json',
         annotations_dir=data_root + 'valid/Annotations'),
]
