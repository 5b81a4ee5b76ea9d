# The tiny SOC of soc_tiny_synthetic.py trained from scratch on synthetic Long-RVOS (long videos of moving
# shapes that leave and come back, two look-alikes per video; static / dynamic / hybrid descriptions), CPU.
# Prepare:
#   python tools/dataset_converters/generate_synthetic_rvos.py long_rvos data/synthetic_long_rvos \
#       --num-train 200 --num-valid 20 --num-test 0 --num-frames 48 --size 64 64
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_long_rvos/train/meta_expressions.json \
#       --out data/synthetic_long_rvos/tiny_roberta
# Train / test:
#   python tools/train.py configs/soc/soc_tiny_synthetic_long_rvos.py
#   python tools/test.py configs/soc/soc_tiny_synthetic_long_rvos.py \
#       work_dirs/soc_tiny_synthetic_long_rvos/iter_4000.pth
# Model: the tiny SOC (sizes, losses, AdamW) unchanged; the data, the clip sampling and the evaluation
# differ. The test reports LongRVOSMetric's J, F, J&F, tIoU and vIoU per description type and overall, and
# writes the predictions in the official layout (<prediction_dir>/Annotations/<video>/<exp_id>/<frame>.png),
# which tools/analysis_tools/eval_rvos.py long-rvos and the official eval/eval_long_rvos scripts read.
_base_ = ['./soc_tiny_synthetic.py']

data_root = 'data/synthetic_long_rvos/'
text_encoder_path = data_root + 'tiny_roberta'  # made by tools/misc/make_tiny_text_encoder.py
# Training clips: 6 frames drawn from the whole video (LongRVOSDataset 'random', the official loader's
# rule), at least one of them showing the object: Long-RVOS descriptions ("the object that moves up and
# down", "the shape that leaves and comes back") are about the whole video, which 6 consecutive frames of a
# long video rarely show.
num_frames = 6
frame_sampling = 'random'
max_iters = 4000
# Held-out videos are evaluated whole, as consecutive clips of clip_len frames (the memory does not grow
# with the video's length; each clip selects its own query, SOC's test-time rule per clip).
clip_len = 24

model = dict(text_encoder=dict(model_path=text_encoder_path), test_cfg=dict(clip_len=clip_len))

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadLongRVOSMasks'),
    # the descriptions say nothing about left/right that a flip would falsify except "horizontally",
    # which a flip keeps
    dict(type='RVOSRandomFlip', prob=0.5),
    dict(type='PackRVOSInputs'),
]
# no masks: LongRVOSMetric reads the ground truth from the split's Annotations folder
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='PackRVOSInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='LongRVOSDataset', data_root=data_root, split='train', num_frames=num_frames,
                 frame_sampling=frame_sampling, pipeline=train_pipeline))
test_dataloader = dict(
    # no padded duplicates: every expression once (its PNGs are written once)
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    # the expressions of a video in one batch: the video backbone runs once for all of them
    batch_sampler=dict(type='RVOSVideoBatchSampler', max_expressions=8),
    dataset=dict(_delete_=True, type='LongRVOSDataset', data_root=data_root, split='valid', load_gt=False,
                 pipeline=test_pipeline))
prediction_dir = 'work_dirs/soc_tiny_synthetic_long_rvos/valid_pred/'
test_evaluator = [
    dict(type='LongRVOSMetric', meta_file=data_root + 'valid/meta_expressions.json',
         annotations_dir=data_root + 'valid/Annotations'),
    dict(type='RefYTVOSSubmissionMetric', output_dir=prediction_dir, zip_name='long_rvos_valid_pred.zip',
         keep_pngs=True, meta_file=data_root + 'valid/meta_expressions.json'),
]

# ------------------------------------------------------------------ schedule (the tiny config's, with these iterations)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters - 200, eta_min=3e-4 * 0.01, by_epoch=False, begin=200,
         end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
