# The default Refer-YouTube-VOS setting under its short name (`python tools/train.py
# configs/soc/soc_swin-t_refytvos.py`): SOC, Video-Swin-T, from scratch, 8 GPUs x 1 clip, 30 epochs
# (SOC README "ytb_from_scratch"). Every value comes from the full-name config below; work
# directories follow this file's name (work_dirs/soc_swin-t_refytvos/).
_base_ = ['./soc_swin-t_8xb1-30e_refytvos.py']
