# SOC, Video-Swin-T, Refer-YouTube-VOS from scratch (SOC README "ytb_from_scratch"):
# lr 1e-4, backbone_lr 1e-5, frozen RoBERTa, 8 GPUs x 1 clip of 8 frames, 30 epochs,
# lr x0.1 at epoch 20 (all as the base model and schedule), 65 category classes.
# `soc_swin-t_refytvos.py` is this setting under its short name.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/refytvos.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
text_encoder_lr = 5e-5  # SOC's configs/refer_youtube_vos.yaml (unused: RoBERTa is frozen)

model = dict(bbox_head=dict(num_classes=65))  # Ref-YouTube-VOS categories (dataset with_category=True)

# text_encoder_lr / lr (1e-4, the base schedule's)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'text_encoder.model': dict(lr_mult=0.5)}))
