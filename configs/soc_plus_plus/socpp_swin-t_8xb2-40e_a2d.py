# SOC++, Video-Swin-T, A2D-Sentences from the Kinetics Video-Swin, as SOC++'s scripts/train_a2d.sh with
# configs/a2d_sentences.yaml:
#   train_a2d.sh: -ng 8 -bs 2 (8 GPUs x 2 clips), -ws 8 (8-frame windows), --epochs 40, --lr_drop 20
#     (MultiStepLR x0.2: SOC++'s trainer uses gamma 0.2 for A2D), --backbone video-swin-t
#     (swin_tiny_patch244_window877_kinetics400_1k.pth), --use_proxymmf (num_proxy_query 20);
#   a2d_sentences.yaml: lr 1e-4, lr_backbone 5e-6, text_encoder_lr 5e-6 (unused: freeze_text_encoder true),
#     weight_decay 1e-4, clip_max_norm 0.1, enable_amp false, seed 42, train/eval short side 320 (max 576),
#     flips on (P = 0.3085), random_color off, num_classes 1; the model values of ./_base_/socpp_swin-t.py.
# Data and evaluation as SOC's (../_base_/datasets/a2d_sentences.py): every instance of the annotated frame
# is a target; validation on the test split after every epoch (IoU, P@K, mAP over every query's mask).
_base_ = [
    './_base_/socpp_swin-t.py', '../_base_/datasets/a2d_sentences.py', '../_base_/schedules/soc_adamw_30e.py',
    '../_base_/default_runtime.py'
]
lr, backbone_lr, text_encoder_lr = 1e-4, 5e-6, 5e-6  # text_encoder_lr unused: RoBERTa is frozen
max_epochs, lr_drop_epochs, lr_gamma = 40, [20], 0.2

model = dict(
    train_cfg=dict(referred_only=False),     # A2D: every instance of the annotated frame is a target
    test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP
# keep the best checkpoint by mAP too (SOC++'s trainer keeps its best-mAP model on A2D)
default_hooks = dict(checkpoint=dict(save_best='a2d/mAP', rule='greater'))

# the base schedule's entries computed from the values changed above
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=backbone_lr / lr),
        'text_encoder.model': dict(lr_mult=text_encoder_lr / lr)}))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_drop_epochs,
         gamma=lr_gamma)
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=16)  # 8 GPUs x 2 clips
