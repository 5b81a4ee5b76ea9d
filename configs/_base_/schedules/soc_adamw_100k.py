# SOC's optimisation (./soc_adamw_30e.py: AdamW with weight decay 1e-4, gradient clipping at max-norm 0.1,
# lr 1e-4 / Video-Swin 1e-5 / RoBERTa 5e-6) on an iteration schedule, as the MeViS methods train: MeViS
# clips are drawn anew from the whole video each time (MeViSDataset frame_sampling='global'), so an
# "epoch" has no fixed meaning there. The length is the MeViS paper's LMPM baseline (henghuiding/MeViS
# configs/lmpm_SWIN_bs8.yaml: 8 GPUs x 1 clip, MAX_ITER 100000, lr x0.1 at STEPS 40000 and 85000);
# SOC's batch is the same (8 GPUs x 1 clip on Ref-YouTube-VOS), so its learning rates stay as they are.
#
# mmengine evaluates this file before the config that inherits it: a config that changes `max_iters`,
# `lr_drop_iters` or `lr_gamma` must restate `param_scheduler` and `train_cfg`. Configs using this
# schedule also count checkpoints and log windows in iterations:
#   default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000))
#   log_processor = dict(by_epoch=False)
# (the runtime's; two base files cannot both define them).
_base_ = ['./soc_adamw_30e.py']
max_epochs = None         # iteration-based: the epoch variables of the base schedule do not apply
lr_drop_epochs = None
max_iters = 100000
lr_drop_iters = [40000, 85000]   # MultiStepLR milestones (iterations)
lr_gamma = 0.1

param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=lr_drop_iters, gamma=lr_gamma)
]
# validation (MeViS valid_u: whole videos of every expression) once, at the end, as LMPM (EVAL_PERIOD > MAX_ITER)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
