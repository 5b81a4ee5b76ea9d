# Evaluation only: JHMDB-Sentences with an A2D-Sentences checkpoint, as SOC (scripts/eval_jhd.sh,
# configs/jhmdb_sentences.yaml: the Swin-T A2D fine-tuned checkpoint). Usage:
#   python tools/test.py configs/soc/soc_swin-t_refcoco-pre_a2d_test-jhmdb.py \
#       work_dirs/soc_swin-t_refcoco-pre_8xb1-20e_a2d/epoch_20.pth
_base_ = [
    '../_base_/models/soc_swin-t.py', '../_base_/datasets/jhmdb_sentences.py',
    '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(return_all_queries=True))  # every query's mask for the mAP
