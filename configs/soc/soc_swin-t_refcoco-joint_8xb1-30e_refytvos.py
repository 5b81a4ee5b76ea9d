# SOC, Video-Swin-T, joint training on RefCOCO/+/g pseudo-clips + Refer-YouTube-VOS (SOC README
# "ytb_joint_train"): lr 1e-4, backbone_lr 1e-5, frozen RoBERTa, 8 GPUs x 1 clip of 8 frames,
# 30 epochs, lr x0.1 at epoch 20, one class: the base model and schedule as they are. Test on
# Ref-YouTube-VOS valid (submission zip).
# Note: the README table freezes RoBERTa; SOC's configs/joint.yaml trains it (text_encoder_lr
# 5e-6, the base schedule's): set model.text_encoder.freeze=False to follow the yaml.
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/refcoco_refytvos_joint.py',
    '../_base_/schedules/soc_adamw_30e.py', '../_base_/default_runtime.py'
]
