# Tiny SOC trained from scratch on the synthetic Ref-YouTube-VOS-format data (moving coloured shapes),
# batch 1, 4-frame clips at 96x96, CPU. Used by `make demo` (tools/demo/run_demo.py) and the smoke test.
# Prepare (run_demo.py does both):
#   python tools/dataset_converters/generate_synthetic_rvos.py ref_youtube_vos data/synthetic_refytvos \
#       --num-train 300 --num-valid 30 --num-frames 8 --size 96 96
#   python tools/misc/make_tiny_text_encoder.py data/synthetic_refytvos --out data/synthetic_refytvos/tiny_roberta
# Model as the calibrated official tiny SOC: d_model 128, 16-channel Video-Swin, 5 queries, 2+2 deformable
# layers, 2+2 VOC layers, trainable tiny RoBERTa.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/synthetic_refytvos/'
text_encoder_path = data_root + 'tiny_roberta'  # made by tools/misc/make_tiny_text_encoder.py
num_frames = 4
# `make demo` trains in 2 data-parallel processes of batch 1 (tools/dist_train.sh ... 2; gloo, 1 thread
# each): 2 clips per iteration, 4000 iterations in 13-14.4 min on 2 cores. One process (1 clip per
# iteration, ~0.16 s) reached 0.834 held-out J&F where 2 processes reach 0.887 (README, "make demo").
max_iters = 4000
base_lr = 3e-4            # best lr of the official-model calibration; one lr for every part

embed_dims = 128
num_queries = 5
num_levels = 4
mask_dims = 8
dropout = 0.1
_msda = dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels, num_points=4, dropout=dropout,
             batch_first=True)
_ffn = dict(embed_dims=embed_dims, feedforward_channels=128, ffn_drop=dropout)

model = dict(
    type='SOC',
    num_queries=num_queries,
    num_feature_levels=num_levels,
    with_box_refine=True,
    data_preprocessor=dict(type='RVOSDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(type='VideoSwinTransformer', arch=dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8]),
                  patch_size=(1, 4, 4), window_size=(8, 7, 7), drop_path_rate=0.0),
    text_encoder=dict(type='RoBERTaTextEncoder', model_path=text_encoder_path, embed_dims=embed_dims,
                      freeze=False, proj_dropout=0.1),
    neck=dict(type='mmdet.ChannelMapper', in_channels=[32, 64, 128], kernel_size=1, out_channels=embed_dims,
              act_cfg=None, bias=True, norm_cfg=dict(type='GN', num_groups=32), num_outs=num_levels),
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=_msda, ffn_cfg=_ffn)),
    decoder=dict(num_layers=2, return_intermediate=True, post_norm_cfg=None,
                 layer_cfg=dict(self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=dropout,
                                                   batch_first=True),
                                cross_attn_cfg=_msda, ffn_cfg=_ffn)),
    voc=dict(type='VOC', embed_dims=embed_dims, num_heads=8, num_queries=num_queries,
             num_frame_queries=num_queries, num_encoder_layers=2, num_decoder_layers=2,
             feedforward_channels=128, window_size=0),
    spatial_decoder=dict(type='SOCSpatialDecoder', in_channels=embed_dims,
                         skip_channels=[embed_dims, embed_dims, 16], out_channels=mask_dims),
    bbox_head=dict(
        type='SOCHead', num_classes=1, embed_dims=embed_dims, num_pred_layer=2,
        mask_head=dict(type='DynamicMaskHead', in_channels=mask_dims, channels=8, num_layers=3, rel_coord=True),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0, loss_weight=2.0),
        loss_mask=dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0, loss_weight=2.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0,
                       loss_weight=5.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=2.0),
        loss_iou=dict(type='SOCGIoULoss', loss_weight=2.0),
        loss_con=dict(type='QuerySentenceContrastiveLoss', loss_weight=1.0)),
    train_cfg=dict(referred_only=True),
    test_cfg=dict(output_level='first', return_all_queries=False))

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadPaletteMasks'),
    # flip with 'left' <-> 'right' swapped in the expression: position words stay true
    dict(type='RVOSRandomFlip', prob=0.5),
    dict(type='PackRVOSInputs'),
]
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadPaletteMasks'),
    dict(type='PackRVOSInputs', pack_ori_gt_masks=True),
]
# num_workers=0: loading a 4-frame 96x96 clip takes ~6 ms of a ~190 ms step; a worker process per
# training process would only compete for the cores (`make demo` runs one training process per core)
train_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RefYouTubeVOSDataset', data_root=data_root, split='train', num_frames=num_frames,
                 with_category=False, pipeline=train_pipeline))
# held-out videos (the synthetic valid split has masks), whole videos
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RefYouTubeVOSDataset', data_root=data_root, split='valid', load_gt=True,
                 pipeline=test_pipeline))
test_evaluator = dict(type='RVOSJFMetric')
test_cfg = dict(type='TestLoop')
val_dataloader = None
val_evaluator = None
val_cfg = None

# ------------------------------------------------------------------ schedule
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    # fused: one kernel for all parameters (5 % of a CPU step here)
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# short linear warm-up, then cosine decay to 1 %. With 1 process (batch 1): 5000 iterations, step
# decay, dropout 0, EMA, lr 6e-4 (the model then follows the text only late) and a 5x text-encoder lr
# were not better than this schedule (README, "make demo").
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters - 200, eta_min=base_lr * 0.01, by_epoch=False,
         begin=200, end=max_iters),
]

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1, save_last=True))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
