# SOC's optimisation: AdamW (weight decay 1e-4 on every parameter), gradient clipping at max-norm
# 0.1, per-part learning rates, step decay per epoch (MultiStepLR). Defaults = Ref-YouTube-VOS from
# scratch (30 epochs, x0.1 at epoch 20). Configs override `lr`-dependent values explicitly.
max_epochs = 30
lr = 1e-4                 # transformer, heads, VOC, fusion, text projection
backbone_lr = 1e-5        # Video-Swin (parameters whose name contains 'backbone')
text_encoder_lr = 5e-6    # RoBERTa weights (unused while the text encoder is frozen)
enable_amp = False        # True = AmpOptimWrapper (same as `tools/train.py --amp`)

optim_wrapper = dict(
    type='AmpOptimWrapper' if enable_amp else 'OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    # The longest matching key wins. 'text_encoder.model' = the RoBERTa weights only; the text
    # projection (`text_encoder.proj`, SOC's `txt_proj`) trains with the main lr, as in SOC.
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=backbone_lr / lr),
        'text_encoder.model': dict(lr_mult=text_encoder_lr / lr),
    }))

param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[20], gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)

# SOC's lr is for its batch (8 GPUs x 1 clip on Ref-YouTube-VOS); `--auto-scale-lr` scales it linearly.
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=42, diff_rank_seed=True)  # official: seed 42 + rank
