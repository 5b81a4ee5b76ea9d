# Evaluation only: SOC++'s MeViS inference (infer_mevis.py; see socpp_swin-t_mevis_test-valid.py) on
# "valid_u" (public masks), scored by our offline MeViS evaluator (MeViSMetric: J, F and J&F exactly as the
# official eval_mevis.py), with the predictions also kept as PNGs in the server layout
# (<prediction_dir>/Annotations/<video>/<exp_id>/<frame>.png, which tools/analysis_tools/eval_mevis.py
# scores as well). Usage:
#   python tools/test.py configs/soc_plus_plus/socpp_swin-t_mevis_test-valid_u.py \
#       work_dirs/socpp_swin-t_8xb1-30e_mevis/epoch_30.pth
_base_ = ['./socpp_swin-t_8xb1-30e_mevis.py']
load_from = None
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
auto_scale_lr = None
val_dataloader = None
val_evaluator = None
val_cfg = None

prediction_dir = 'work_dirs/socpp_swin-t_mevis_test-valid_u/valid_u_pred/'
test_evaluator = [
    {{_base_.test_evaluator}},  # MeViSMetric on valid_u (the dataset base's)
    dict(type='MeViSSubmissionMetric', output_dir=prediction_dir, keep_pngs=True,
         meta_file={{_base_.test_evaluator.meta_file}}),
]
