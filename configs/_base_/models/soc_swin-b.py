# SOC with a Video-Swin-B backbone: Swin-T's settings with the base backbone.
_base_ = ['./soc_swin-t.py']
backbone_checkpoint = 'pretrained/swin_base_patch244_window877_kinetics400_22k.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[256, 512, 1024]),
    spatial_decoder=dict(skip_channels=[256, 256, 128]))
