# SOC, Video-Swin-T, image pretraining on RefCOCO + RefCOCO+ + RefCOCOg (SOC README "Pretrain"):
# lr 1e-4, backbone_lr 1e-5, text_encoder_lr 5e-6 (RoBERTa trained), 8 GPUs x 8 images
# (one-frame clips), 30 epochs, lr x0.1 at epochs 15 and 20. Validation: the three val splits.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/refcoco.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
lr, backbone_lr, text_encoder_lr = 1e-4, 1e-5, 5e-6
max_epochs, lr_drop_epochs, lr_gamma = 30, [15, 20], 0.1
enable_amp = False

model = dict(
    text_encoder=dict(freeze=False),
    bbox_head=dict(num_classes=1),
    train_cfg=dict(referred_only=True),
    test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP
train_dataloader = dict(batch_size=8)

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
auto_scale_lr = dict(base_batch_size=64)  # 8 GPUs x 8 images
