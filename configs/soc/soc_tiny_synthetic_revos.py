# The tiny SOC of soc_tiny_synthetic.py trained from scratch on synthetic ReVOS (moving shapes; referring
# expressions, long reasoning questions and expressions that refer to nothing; several objects per
# expression, objects that leave and come back, overlapping objects), CPU.
# Prepare:
#   python tools/dataset_converters/generate_synthetic_rvos.py revos data/synthetic_revos \
#       --num-train 200 --num-valid 20 --num-frames 10 --size 64 96
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_revos/meta_expressions_train_.json \
#       --out data/synthetic_revos/tiny_roberta
# Train / test:
#   python tools/train.py configs/soc/soc_tiny_synthetic_revos.py
#   python tools/test.py configs/soc/soc_tiny_synthetic_revos.py work_dirs/soc_tiny_synthetic_revos/iter_4000.pth
# Model: the tiny SOC (sizes, losses, AdamW) with ReVOS inference: every video query above score_thr, none
# when no query passes it (no-target expressions). The test reports RevosMetric's J, F, A, R and JF for the
# referring, reasoning and overall tables (VISA's eval_revos.py rules) and writes the masks as 0/255 PNGs
# <prediction_dir>/<video>/<exp_id>/<frame>.png, which tools/analysis_tools/eval_rvos.py revos (and VISA's
# eval_revos.py) score to the same numbers.
_base_ = ['./soc_tiny_synthetic.py']

data_root = 'data/synthetic_revos/'
text_encoder_path = data_root + 'tiny_roberta'  # made by tools/misc/make_tiny_text_encoder.py
# Training clips: 6 frames spread over the whole video ('global': the window's first frame, a neighbour on
# each side, 3 frames from the rest): reasoning expressions such as "the object that disappears for a while
# and later comes back" are about the whole video, which a window of consecutive frames does not show.
num_frames = 6
frame_sampling = 'global'
max_iters = 4000
score_thr = 0.5

model = dict(
    text_encoder=dict(model_path=text_encoder_path),
    test_cfg=dict(object_selection='threshold', score_thr=score_thr, allow_no_target=True))

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRLEMasks'),
    # the expressions name no side (left/right) that a flip would falsify
    dict(type='RVOSRandomFlip', prob=0.5),
    dict(type='PackRVOSInputs'),
]
# no masks: RevosMetric reads the ground truth and the foreground from the mask files
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='PackRVOSInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='ReVOSDataset', data_root=data_root, split='train', num_frames=num_frames,
                 frame_sampling=frame_sampling, pipeline=train_pipeline))
test_dataloader = dict(
    # no padded duplicates: every expression once
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    # the expressions of a video in one batch: the video backbone runs once for all of them
    batch_sampler=dict(type='RVOSVideoBatchSampler', max_expressions=8),
    dataset=dict(_delete_=True, type='ReVOSDataset', data_root=data_root, split='valid', load_gt=False,
                 pipeline=test_pipeline))
prediction_dir = 'work_dirs/soc_tiny_synthetic_revos/valid_pred/'
test_evaluator = dict(type='RevosMetric', meta_file=data_root + 'meta_expressions_valid_.json',
                      mask_dict_file=data_root + 'mask_dict.json',
                      foreground_file=data_root + 'mask_dict_foreground.json', output_dir=prediction_dir)

# ------------------------------------------------------------------ schedule (the tiny config's, with these iterations)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters - 200, eta_min=3e-4 * 0.01, by_epoch=False, begin=200,
         end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
