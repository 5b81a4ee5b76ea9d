# SOC, Video-Swin-T, trained on MeViS "train" from the Kinetics Video-Swin (no RefCOCO / Ref-YouTube-VOS
# weights), evaluated on "valid_u" (J&F, MeViSMetric). An expression may refer to several objects:
# training matches every referred object (SOCHead: one class / contrastive positive per referred object);
# inference keeps every video query whose score passes a threshold and returns the union of their masks.
# Sources of the MeViS-specific values (SOC itself publishes no MeViS setting):
#   * schedule: the MeViS paper's LMPM baseline (henghuiding/MeViS configs/lmpm_SWIN_bs8.yaml): 8 GPUs x 1
#     clip, 100k iterations, lr x0.1 at 40k and 85k (../_base_/schedules/soc_adamw_100k.py);
#   * learning rates, weight decay, clipping, frozen RoBERTa: SOC's "ytb_from_scratch" (same batch of 8);
#   * 8 frames per clip spread over the video: SOC's window length and DsHmp's SAMPLING_FRAME_NUM 8
#     (heshuting555/DsHmp configs/dshmp_swin_tiny.yaml; LMPM and ReferDINO use 6);
#   * object selection: ReferDINO's MeViS inference (eval/inference_mevis.py): sigmoid class scores averaged
#     over the frames, every query above 0.2 (obj_threshold), the top-1 query when none is. SOC's class
#     scores are the same kind (sigmoid focal, "is referred"). LMPM / DsHmp threshold softmax scores with a
#     no-object class (TEST_OUTPUT_THRESHOLD 0.8 / 0.5), another scale.
# MeViS v2 (expressions that refer to no object): add model.test_cfg.allow_no_target=True (empty masks when
# no query passes the threshold, instead of the top-1 query).
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/mevis.py',
    '../_base_/schedules/soc_adamw_100k.py', '../_base_/default_runtime.py'
]
score_thr = 0.2

# one class ("is referred"): MeViS has no category per expression
model = dict(test_cfg=dict(object_selection='threshold', score_thr=score_thr, allow_no_target=False))

# iteration-based schedule: checkpoints and log windows count iterations
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000))
log_processor = dict(by_epoch=False)
