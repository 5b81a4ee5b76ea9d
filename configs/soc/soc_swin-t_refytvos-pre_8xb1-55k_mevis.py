# SOC, Video-Swin-T, fine-tuned on MeViS "train" from a Refer-YouTube-VOS checkpoint (itself from the
# RefCOCO pretraining), evaluated on "valid_u". As soc_swin-t_8xb1-100k_mevis.py, except:
#   * starts from trained RVOS weights, so the shorter MeViS schedule of DsHmp (heshuting555/DsHmp
#     configs/dshmp_swin_tiny.yaml, which also starts from a trained segmentation model: 8 GPUs x 1 clip,
#     MAX_ITER 55000, lr x0.1 at STEPS 40000 and 50000);
#   * RoBERTa trained with lr 5e-6, as SOC's fine-tuning from pretrained weights ("ytb_with_pretrain").
_base_ = ['./soc_swin-t_8xb1-100k_mevis.py']
# The Ref-YouTube-VOS weights: the last checkpoint of soc_swin-t_refcoco-pre_8xb8-25e_refytvos.py (or of
# soc_swin-t_refcoco-joint_8xb1-30e_refytvos.py), or an official Ref-YouTube-VOS checkpoint converted with
# tools/model_converters/soc_official_to_mm.py (one class: not the 65-class ytb_from_scratch ones).
load_from = 'pretrained/soc_swin-t_refcoco-pre_8xb8-25e_refytvos.pth'
max_iters, lr_drop_iters = 55000, [40000, 50000]

model = dict(text_encoder=dict(freeze=False))

# the base schedule's entries computed from the values changed above
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=lr_drop_iters,
         gamma={{_base_.lr_gamma}})
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
