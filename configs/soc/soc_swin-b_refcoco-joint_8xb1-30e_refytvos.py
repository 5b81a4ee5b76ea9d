# SOC, Video-Swin-B, joint RefCOCO + Refer-YouTube-VOS training (SOC README "ytb_joint_train"):
# the Swin-T recipe with the base backbone (as ../_base_/models/soc_swin-b.py).
_base_ = ['./soc_swin-t_refcoco-joint_8xb1-30e_refytvos.py']
backbone_checkpoint = 'pretrained/swin_base_patch244_window877_kinetics400_22k.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[256, 512, 1024]),
    spatial_decoder=dict(skip_channels=[256, 256, 128]))
