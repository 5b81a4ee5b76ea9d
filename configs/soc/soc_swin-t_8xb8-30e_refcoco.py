# SOC, Video-Swin-T, image pretraining on RefCOCO + RefCOCO+ + RefCOCOg (SOC README "Pretrain"):
# lr 1e-4, backbone_lr 1e-5, text_encoder_lr 5e-6 (RoBERTa trained), 8 GPUs x 8 images
# (one-frame clips, the dataset base's batch), 30 epochs, lr x0.1 at epochs 15 and 20.
# Validation: the three val splits.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/refcoco.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
lr_drop_epochs = [15, 20]

model = dict(
    text_encoder=dict(freeze=False),
    test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP

# the base schedule's entries computed from the values changed above
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end={{_base_.max_epochs}},
         milestones=lr_drop_epochs, gamma={{_base_.lr_gamma}})
]
auto_scale_lr = dict(base_batch_size=64)  # 8 GPUs x 8 images
