# Evaluation only: the MeViS "valid" split (no public masks) with a Swin-T MeViS checkpoint
# (soc_swin-t_8xb1-100k_mevis.py or soc_swin-t_refytvos-pre_8xb1-55k_mevis.py): writes the PNGs of every
# frame of every expression and the zip the CodaLab server takes (MeViSSubmissionMetric). Usage:
#   python tools/test.py configs/soc/soc_swin-t_mevis_test-valid.py \
#       work_dirs/soc_swin-t_refytvos-pre_8xb1-55k_mevis/iter_55000.pth
# (a Swin-B checkpoint: the same with `_base_ = ['./soc_swin-b_8xb1-100k_mevis.py']`).
_base_ = ['./soc_swin-t_8xb1-100k_mevis.py']
load_from = None
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
auto_scale_lr = None
val_dataloader = None
val_evaluator = None
val_cfg = None

test_dataloader = dict(dataset=dict(split='valid'))
test_evaluator = dict(_delete_=True, type='MeViSSubmissionMetric', output_dir={{_base_.submission_dir}},
                      meta_file={{_base_.valid_meta_file}})  # every expression of "valid" must be predicted
