# Evaluation only: Ref-DAVIS17 with the SOC++ Refer-YouTube-VOS model (socpp_swin-t_8xb1-30e_refytvos.py), as
# SOC++'s infer_davis.py with configs/davis.yaml: frames resized to a short side of 360 (max 640), whole
# videos in consecutive 36-frame clips, each picking its own top-1 query, masks at 0.5; J&F per annotator set
# averaged over the 4 sets. (scripts/infer_davis.sh runs a Video-Swin-B joint-training checkpoint; SOC++
# publishes no Swin-B training script, so this config tests the Swin-T model SOC++'s train_ytb.sh trains.)
# Usage:
#   python tools/test.py configs/soc_plus_plus/socpp_swin-t_refytvos_test-refdavis17.py \
#       work_dirs/socpp_swin-t_8xb1-30e_refytvos/epoch_30.pth
_base_ = ['./_base_/socpp_swin-t.py', '../_base_/datasets/ref_davis17.py', '../_base_/default_runtime.py']
# the Ref-YouTube-VOS model (RoBERTa was trained: its weights are in the checkpoint either way)
model = dict(text_encoder=dict(freeze=False), test_cfg=dict(clip_len=36))
