# SOC++, Video-Swin-T, trained on MeViS "train" from the Kinetics Video-Swin, as SOC++'s
# scripts/train_mevis.sh with configs/mevis.yaml:
#   train_mevis.sh: -ng 8 -bs 1 (8 GPUs x 1 clip), -ws 8 (8-frame windows), --epochs 30, --lr_drop 20
#     (MultiStepLR x0.1: SOC++'s trainer uses gamma 0.2 for A2D only), --backbone video-swin-t
#     (swin_tiny_patch244_window877_kinetics400_1k.pth), --use_proxymmf (num_proxy_query 20);
#   mevis.yaml: lr 2e-5, lr_backbone 2e-6, text_encoder_lr 2e-6 (unused: freeze_text_encoder true),
#     weight_decay 1e-4, clip_max_norm 0.1, enable_amp false, seed 42, train/eval short side 360 (max 640),
#     horizontal flips on (torch.randn(1) > 0.5: P = 0.3085), random_color off, num_classes 1; the model
#     values of ./_base_/socpp_swin-t.py.
# SOC++'s MeViS data (datasets/mevis/mevis.py): consecutive 8-frame windows (the last one completed) in which
# EVERY referred object appears (MeViSAllReferredWindowsDataset), and the referred objects merged into one
# target per expression (MergeReferredObjects: union mask, SOC++'s box, visible where the union is).
# Validation after every epoch: J&F on valid_u (MeViSMetric) with SOC++'s MeViS inference (infer_mevis.py):
# the whole video at once, the query with the highest time-averaged sigmoid score (top-1), its mask at 0.5,
# the last decoder layer (test_cfg: object_selection='top1', clip_len=None, output_layer='last').
_base_ = [
    './_base_/socpp_swin-t.py', '../_base_/datasets/mevis.py', '../_base_/schedules/soc_adamw_30e.py',
    '../_base_/default_runtime.py'
]
lr, backbone_lr, text_encoder_lr = 2e-5, 2e-6, 2e-6  # text_encoder_lr unused: RoBERTa is frozen

model = dict(test_cfg=dict(object_selection='top1', clip_len=None))

train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRLEMasks'),
    dict(type='RVOSRandomFlip', prob={{_base_.flip_prob}}),  # also swaps left/right in the expression
    dict(type='RVOSRandomResize', short_side=[{{_base_.train_short_size}}], max_size={{_base_.train_max_size}}),
    dict(type='PackRVOSInputs'),
    dict(type='MergeReferredObjects'),  # one target: the union of the referred objects
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),  # epochs (the MeViS base counts iterations)
    dataset=dict(
        _delete_=True,
        type='MeViSAllReferredWindowsDataset',
        data_root={{_base_.data_root}},
        split='train',
        num_frames={{_base_.num_frames}},
        pipeline=train_pipeline))

# the base schedule's entries computed from the values changed above (30 epochs, x0.1 at 20: the base's)
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=backbone_lr / lr),
        'text_encoder.model': dict(lr_mult=text_encoder_lr / lr)}))
