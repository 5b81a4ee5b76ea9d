# Evaluation only: Ref-DAVIS17 with a Refer-YouTube-VOS checkpoint, as SOC (scripts/infer_davis.sh:
# the Swin-B joint-training checkpoint); J&F averaged over the 4 annotator sets. Usage:
#   python tools/test.py configs/soc/soc_swin-b_refcoco-joint_refytvos_test-refdavis17.py \
#       work_dirs/soc_swin-b_refcoco-joint_8xb1-30e_refytvos/epoch_30.pth
_base_ = [
    '../_base_/models/soc_swin-b.py', '../_base_/datasets/ref_davis17.py',
    '../_base_/default_runtime.py'
]
# as infer_davis.py: whole videos in consecutive 36-frame clips, each picking its own query
model = dict(test_cfg=dict(clip_len=36))
