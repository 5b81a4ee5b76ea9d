# Evaluation only: JHMDB-Sentences with the SOC++ A2D-Sentences model (socpp_swin-t_8xb2-40e_a2d.py), as
# SOC++'s configs/jhmdb_sentences.yaml: frames resized to a short side of 320 (max 576), 8-frame windows
# centred on the evaluated frames, one clip per batch (eval_batch_size 1), IoU, P@K and mAP over every
# query's mask (last decoder layer). Usage:
#   python tools/test.py configs/soc_plus_plus/socpp_swin-t_a2d_test-jhmdb.py \
#       work_dirs/socpp_swin-t_8xb2-40e_a2d/epoch_40.pth
_base_ = ['./_base_/socpp_swin-t.py', '../_base_/datasets/jhmdb_sentences.py', '../_base_/default_runtime.py']
model = dict(test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP
