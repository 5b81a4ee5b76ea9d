# Evaluation only: SOC++'s MeViS inference (infer_mevis.py, scripts/infer_mevis.sh: Video-Swin-T, the MeViS
# checkpoint) on the "valid" split (no public masks), written as the zip the CodaLab server takes
# (MeViSSubmissionMetric; the PNGs of every frame of every expression). Inference as infer_mevis.py: frames
# resized to a short side of 360 (max 640), the whole video in one clip, the query with the highest sigmoid
# score averaged over the frames (top-1), its mask thresholded at 0.5, the last decoder layer
# (socpp_swin-t_8xb1-30e_mevis.py's model and test_cfg). The offline J&F on "valid_u" is
# socpp_swin-t_mevis_test-valid_u.py (same model and inference). Usage:
#   python tools/test.py configs/soc_plus_plus/socpp_swin-t_mevis_test-valid.py \
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

test_dataloader = dict(dataset=dict(split='valid'))
test_evaluator = dict(_delete_=True, type='MeViSSubmissionMetric', output_dir={{_base_.submission_dir}},
                      meta_file={{_base_.valid_meta_file}})  # every expression of "valid" must be predicted
