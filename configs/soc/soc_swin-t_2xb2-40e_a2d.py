# SOC, Video-Swin-T, A2D-Sentences from scratch (SOC README "a2d_from_scratch"):
# lr 5e-5, backbone_lr 5e-6, frozen RoBERTa, 2 GPUs x 2 clips of 8 frames (the dataset base's batch),
# 40 epochs, lr x0.2 at epoch 15. Validation on the test split (IoU, P@K, mAP) after every epoch.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/a2d_sentences.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
lr, backbone_lr, text_encoder_lr = 5e-5, 5e-6, 5e-6  # text_encoder_lr unused: RoBERTa is frozen
max_epochs, lr_drop_epochs, lr_gamma = 40, [15], 0.2

model = dict(
    train_cfg=dict(referred_only=False),     # A2D: every instance of the annotated frame is a target
    test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP
# keep the best checkpoint by mAP too (SOC keeps its best-mAP model)
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
auto_scale_lr = dict(base_batch_size=4)  # 2 GPUs x 2 clips
