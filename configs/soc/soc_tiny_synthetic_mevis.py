# The tiny SOC of soc_tiny_synthetic.py trained from scratch on synthetic MeViS (moving coloured shapes;
# expressions that refer to one object by its motion, to several objects, or to none), CPU. Used by
# `make demo-mevis` (tools/demo/run_mevis_demo.py) and its test. Prepare (run_mevis_demo.py does both):
#   python tools/dataset_converters/generate_synthetic_rvos.py mevis data/synthetic_mevis \
#       --num-train 400 --num-valid-u 100 --num-valid 0 --num-frames 12 --size 96 96 --train-motion-repeats 4
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_mevis/train/meta_expressions.json \
#       --out data/synthetic_mevis/tiny_roberta
# Model: the tiny SOC (sizes, losses, AdamW) with three variant classes (below); the data, the clip length,
# the schedule and the MeViS inference (several objects per expression, or none) differ.
_base_ = ['./soc_tiny_synthetic.py']

data_root = 'data/synthetic_mevis/'
text_encoder_path = data_root + 'tiny_roberta'  # made by tools/misc/make_tiny_text_encoder.py
# Clip length 6 of the 12-frame synthetic videos, frames spread over the whole video ('global': the
# window's first frame, a neighbour on each side, 3 frames drawn from the rest). The twins of a video
# differ only by their motion ("the square that stops moving" moves during the first half and stays
# during the second), so every clip must show the start and the end of the video; 6 spread frames do
# (a 4-frame clip often misses one half), while a clip of 8-12 frames costs 1.3-2x per step (the step
# time is about linear in the frames). Held-out videos are evaluated whole (12 frames, one clip).
num_frames = 6
frame_sampling = 'global'
# 2 data-parallel processes x batch 1 (tools/dist_train.sh ... 2, as `make demo`)
max_iters = 4000
base_lr = 3e-4
warmup_iters = 200
# MeViS inference: every video query whose time-averaged score is above score_thr; none at all when no
# query passes it (the synthetic data has MeViS-v2 expressions that refer to nothing). run_mevis_demo.py
# chooses score_thr on a separate calibration split and passes it with --cfg-options.
score_thr = 0.5
allow_no_target = True

# Motion: SOC's VOC clusters an unordered set of frame queries, so the tiny model segments the twins but
# cannot tell which one "moves left" (docs/mevis_demo.md). The tiny SOC's classes are therefore replaced
# by variants (subclasses that keep SOC's modules and add the options; SOC and the Swin configs use none;
# each tested in tests/test_models/); `type` replaces the base's, its other keys are kept:
# - QueryPropagationSOC: frames decoded in order, each from the previous frame's queries (a query slot
#   follows one object);
# - MeanPoolRoBERTaTextEncoder: the mean of the word features as the sentence feature (the tiny RoBERTa's
#   pooler output is the same for every expression);
# - MotionAwareVOC: VOC reads each frame's time, box and displacement, video query i clusters frame slot i
#   only, and its score gets a learned product of the sentence with its slot's trajectory (an MLP of the
#   slot's centre at 4 evenly spaced times: which segments move tells "stays still", "stops moving" and
#   "moves left" apart).
model = dict(
    type='QueryPropagationSOC',
    text_encoder=dict(type='MeanPoolRoBERTaTextEncoder', model_path=text_encoder_path),
    voc=dict(type='MotionAwareVOC', temporal_pos_encoding=dict(normalize=True), box_encoding=True,
             motion_encoding=True, per_slot_clustering=True, sentence_product=True,
             slot_motion_product='trajectory'),
    test_cfg=dict(object_selection='threshold', score_thr=score_thr, allow_no_target=allow_no_target))

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRLEMasks'),
    # flip with 'left' <-> 'right' swapped in the expression: "the square that moves left" stays true
    dict(type='RVOSRandomFlip', prob=0.5),
    dict(type='PackRVOSInputs'),
]
# no masks: MeViSMetric reads the ground truth from the split's mask_dict.json
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='PackRVOSInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='MeViSDataset', data_root=data_root, split='train', num_frames=num_frames,
                 frame_sampling=frame_sampling, pipeline=train_pipeline))
test_dataloader = dict(
    # no padded duplicates: every expression once (its PNGs are written once)
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    # the expressions of a video in one batch: the video backbone runs once for all of them
    batch_sampler=dict(type='RVOSVideoBatchSampler', max_expressions=8),
    dataset=dict(_delete_=True, type='MeViSDataset', data_root=data_root, split='valid_u', load_gt=False,
                 pipeline=test_pipeline))
# J&F (as the official evaluator) and the predictions in the server layout
# (<prediction_dir>/Annotations/<video>/<exp_id>/<frame>.png, also scored by tools/analysis_tools/eval_mevis.py)
prediction_dir = 'work_dirs/soc_tiny_synthetic_mevis/valid_u_pred/'
test_evaluator = [
    dict(type='MeViSMetric', meta_file=data_root + 'valid_u/meta_expressions.json',
         mask_dict_file=data_root + 'valid_u/mask_dict.json'),
    dict(type='MeViSSubmissionMetric', output_dir=prediction_dir, keep_pngs=True,
         meta_file=data_root + 'valid_u/meta_expressions.json'),
]

# ------------------------------------------------------------------ schedule (the tiny config's, with these iterations)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
# the product's weights learn 10x faster: it is trained only by the motion expressions (a fifth of
# the data), and from zero (its output projection starts at 0)
optim_wrapper = dict(optimizer=dict(lr=base_lr),
                     paramwise_cfg=dict(custom_keys={'voc.sentence_product': dict(lr_mult=10.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, eta_min=base_lr * 0.01, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
