# SOC, Video-Swin-B, trained on MeViS "train" from the Kinetics Video-Swin: the Swin-T recipe
# (soc_swin-t_8xb1-100k_mevis.py) with the base backbone (as ../_base_/models/soc_swin-b.py).
_base_ = ['./soc_swin-t_8xb1-100k_mevis.py']
backbone_checkpoint = 'pretrained/swin_base_patch244_window877_kinetics400_22k.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[256, 512, 1024]),
    spatial_decoder=dict(skip_channels=[256, 256, 128]))
