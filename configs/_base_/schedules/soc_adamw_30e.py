# SOC's optimisation, the one place for it: AdamW (weight decay 1e-4 on every parameter), gradient
# clipping at max-norm 0.1, per-part learning rates, step decay per epoch (MultiStepLR). The values are
# SOC's Ref-YouTube-VOS ones (30 epochs, x0.1 at epoch 20, 8 GPUs x 1 clip: SOC README
# "ytb_from_scratch" / "ytb_joint_train"); configs/soc/*.py override what their setting changes.
#
# mmengine evaluates this file before the config that inherits it: a config that changes one of the
# variables below must also restate the entries computed from it (`lr` -> `optimizer.lr` and both
# `lr_mult`s; `max_epochs` / `lr_drop_epochs` / `lr_gamma` -> `param_scheduler`, `train_cfg`).
# Mixed precision: `optim_wrapper = dict(type='AmpOptimWrapper')` in a config, or `tools/train.py --amp`.
lr = 1e-4                 # transformer, heads, VOC, fusion, text projection
backbone_lr = 1e-5        # Video-Swin (parameters whose name contains 'backbone')
text_encoder_lr = 5e-6    # RoBERTa weights (unused while the text encoder is frozen)
max_epochs = 30
lr_drop_epochs = [20]     # MultiStepLR milestones (epochs)
lr_gamma = 0.1

optim_wrapper = dict(
    type='OptimWrapper',
    # fused: one kernel for every parameter (PyTorch's AdamW; same update; 3x faster on CPU than
    # its per-tensor loop, the default there)
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    # The longest matching key wins. 'text_encoder.model' = the RoBERTa weights only; the text
    # projection (`text_encoder.proj`, SOC's `txt_proj`) trains with the main lr, as in SOC.
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=backbone_lr / lr),
        'text_encoder.model': dict(lr_mult=text_encoder_lr / lr),
    }))

param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_drop_epochs,
         gamma=lr_gamma)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)

# SOC's lr is for its batch (8 GPUs x 1 clip on Ref-YouTube-VOS); `--auto-scale-lr` scales it linearly.
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=42, diff_rank_seed=True)  # official: seed 42 + rank
