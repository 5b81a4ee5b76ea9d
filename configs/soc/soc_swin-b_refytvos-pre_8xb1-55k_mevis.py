# SOC, Video-Swin-B, fine-tuned on MeViS "train" from a Refer-YouTube-VOS checkpoint: the Swin-T recipe
# (soc_swin-t_refytvos-pre_8xb1-55k_mevis.py) with the base backbone (as ../_base_/models/soc_swin-b.py).
_base_ = ['./soc_swin-t_refytvos-pre_8xb1-55k_mevis.py']
backbone_checkpoint = 'pretrained/swin_base_patch244_window877_kinetics400_22k.pth'
load_from = 'pretrained/soc_swin-b_refcoco-pre_8xb8-25e_refytvos.pth'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[256, 512, 1024]),
    spatial_decoder=dict(skip_channels=[256, 256, 128]))
