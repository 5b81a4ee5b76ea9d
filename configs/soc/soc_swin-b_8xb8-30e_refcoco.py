# SOC, Video-Swin-B, RefCOCO/+/g image pretraining (SOC README "Pretrain"): the Swin-T recipe
# with the base backbone (as ../_base_/models/soc_swin-b.py).
_base_ = ['./soc_swin-t_8xb8-30e_refcoco.py']
backbone_checkpoint = 'pretrained/swin_base_patch244_window877_kinetics400_22k.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[256, 512, 1024]),
    spatial_decoder=dict(skip_channels=[256, 256, 128]))
