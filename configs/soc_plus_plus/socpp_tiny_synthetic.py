# Tiny SOC++ trained from scratch on synthetic MeViS (moving coloured shapes; expressions that refer to one
# object, to several, or to none), CPU: the SOC++ counterpart of ../soc/soc_tiny_synthetic.py, used by the
# smoke test (tests/test_tools/test_socpp_tiny_synthetic.py trains and tests it for a few iterations).
# Prepare:
#   python tools/dataset_converters/generate_synthetic_rvos.py mevis data/synthetic_mevis \
#       --num-train 400 --num-valid-u 100 --num-valid 0 --num-frames 12 --size 96 96
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_mevis/train/meta_expressions.json \
#       --out data/synthetic_mevis/tiny_roberta
# Model: the tiny SOC (sizes, losses, AdamW, iteration schedule) as SOC++: SOCPlusPlus with as many proxies
# as queries (SOC++: 20 and 20), its query fusion (8 heads, dropout 0.1), the frame-scored cluster decoder,
# the last decoder layer at test time. Data: SOC++'s MeViS training (MeViSAllReferredWindowsDataset: 4-frame
# windows where every referred object appears; MergeReferredObjects: the referred objects as one target) and
# SOC++'s MeViS inference (whole video, top-1 query by time-averaged score, mask at 0.5), J&F on valid_u.
# The schedule is the tiny SOC's (not tuned for SOC++).
_base_ = ['../soc/soc_tiny_synthetic.py']

data_root = 'data/synthetic_mevis/'
text_encoder_path = data_root + 'tiny_roberta'  # made by tools/misc/make_tiny_text_encoder.py
num_frames = 4
num_queries = 5

model = dict(
    type='SOCPlusPlus',
    num_proxy_queries=num_queries,
    query_fusion=dict(num_heads=8, dropout=0.1),
    text_encoder=dict(model_path=text_encoder_path),
    voc=dict(type='FrameScoredVOC', window_size=0),
    test_cfg=dict(output_layer='last', object_selection='top1', clip_len=None))

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRLEMasks'),
    # flip with 'left' <-> 'right' swapped in the expression: position words stay true
    dict(type='RVOSRandomFlip', prob=0.5),
    dict(type='PackRVOSInputs'),
    dict(type='MergeReferredObjects'),  # one target: the union of the referred objects
]
# no masks: MeViSMetric reads the ground truth from the split's mask_dict.json
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='PackRVOSInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='MeViSAllReferredWindowsDataset', data_root=data_root, split='train',
                 num_frames=num_frames, pipeline=train_pipeline))
test_dataloader = dict(
    # no padded duplicates: every expression once
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(_delete_=True, type='MeViSDataset', data_root=data_root, split='valid_u', load_gt=False,
                 pipeline=test_pipeline))
test_evaluator = dict(_delete_=True, type='MeViSMetric', meta_file=data_root + 'valid_u/meta_expressions.json',
                      mask_dict_file=data_root + 'valid_u/mask_dict.json')
