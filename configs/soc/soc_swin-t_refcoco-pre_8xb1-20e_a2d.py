# SOC, Video-Swin-T, A2D-Sentences fine-tuned from the RefCOCO pretraining (SOC README
# "a2d_with_pretrain"): lr 3e-5, backbone_lr 3e-6, text_encoder_lr 1e-6, frozen RoBERTa,
# 8 GPUs x 1 clip of 8 frames, 20 epochs, no lr drop.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/a2d_sentences.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
# The RefCOCO-pretrained weights (soc_swin-t_8xb8-30e_refcoco.py, or an official checkpoint
# converted with tools/model_converters/soc_official_to_mm.py).
load_from = 'pretrained/soc_swin-t_8xb8-30e_refcoco.pth'
lr, backbone_lr, text_encoder_lr = 3e-5, 3e-6, 1e-6  # text_encoder_lr unused: RoBERTa is frozen
max_epochs = 20

model = dict(
    train_cfg=dict(referred_only=False),     # A2D: every instance of the annotated frame is a target
    test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP
# keep the best checkpoint by mAP too (SOC keeps its best-mAP model)
default_hooks = dict(checkpoint=dict(save_best='a2d/mAP', rule='greater'))
train_dataloader = dict(batch_size=1)

# the base schedule's entries computed from the values changed above
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=backbone_lr / lr),
        'text_encoder.model': dict(lr_mult=text_encoder_lr / lr)}))
# README: lr_drop "-" (scripts/finetune_a2d.sh: --lr_drop 20 with 20 epochs): constant lr.
lr_drop_epochs = []
param_scheduler = []
train_cfg = dict(max_epochs=max_epochs)
