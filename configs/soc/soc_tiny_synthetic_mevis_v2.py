# The tiny SOC of soc_tiny_synthetic_mevis.py on synthetic MeViS v2 (TPAMI 2025): the same layout as v1 with
# the expressions in meta_expressions_v2.json, more expressions that refer to several objects or to none, and
# an audio file per expression (not read: MeViSDataset ignores it). Only the data paths and the release differ
# from the v1 config; the model, the schedule and the MeViS inference (several objects, or none) are its.
# Prepare:
#   python tools/dataset_converters/generate_synthetic_rvos.py mevis_v2 data/synthetic_mevis_v2 \
#       --num-train 400 --num-valid-u 100 --num-valid 0 --num-frames 12 --size 96 96 --train-motion-repeats 3
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_mevis_v2/train/meta_expressions_v2.json \
#       --out data/synthetic_mevis_v2/tiny_roberta
# Score saved predictions offline with
#   python tools/analysis_tools/eval_rvos.py mevis PRED_DIR \
#       --meta-expressions data/synthetic_mevis_v2/valid_u/meta_expressions_v2.json \
#       --masks data/synthetic_mevis_v2/valid_u/mask_dict.json
_base_ = ['./soc_tiny_synthetic_mevis.py']

data_root = 'data/synthetic_mevis_v2/'
mevis_version = 'v2'
text_encoder_path = data_root + 'tiny_roberta'
model = dict(text_encoder=dict(model_path=text_encoder_path))

train_dataloader = dict(dataset=dict(data_root=data_root, version=mevis_version))
test_dataloader = dict(dataset=dict(data_root=data_root, version=mevis_version))
prediction_dir = 'work_dirs/soc_tiny_synthetic_mevis_v2/valid_u_pred/'
test_evaluator = [
    dict(type='MeViSMetric', meta_file=data_root + 'valid_u/meta_expressions_v2.json',
         mask_dict_file=data_root + 'valid_u/mask_dict.json'),
    dict(type='MeViSSubmissionMetric', output_dir=prediction_dir, keep_pngs=True,
         meta_file=data_root + 'valid_u/meta_expressions_v2.json'),
]
