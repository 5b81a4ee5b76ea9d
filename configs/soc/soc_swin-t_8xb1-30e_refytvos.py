# SOC, Video-Swin-T, Refer-YouTube-VOS from scratch (SOC README "ytb_from_scratch"):
# lr 1e-4, backbone_lr 1e-5, frozen RoBERTa, 8 GPUs x 1 clip of 8 frames, 30 epochs,
# lr x0.1 at epoch 20, 65 category classes.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/refytvos.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
lr, backbone_lr, text_encoder_lr = 1e-4, 1e-5, 5e-5  # text_encoder_lr unused: RoBERTa is frozen
max_epochs, lr_drop_epochs, lr_gamma = 30, [20], 0.1
enable_amp = False

model = dict(
    text_encoder=dict(freeze=True),
    bbox_head=dict(num_classes=65),      # Ref-YouTube-VOS categories (dataset with_category=True)
    train_cfg=dict(referred_only=True))  # targets = the referred object only (as SOC)
train_dataloader = dict(batch_size=1)

optim_wrapper = dict(
    type='AmpOptimWrapper' if enable_amp else 'OptimWrapper',
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=backbone_lr / lr),
        'text_encoder.model': dict(lr_mult=text_encoder_lr / lr)}))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_drop_epochs,
         gamma=lr_gamma)
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=8)  # 8 GPUs x 1 clip
