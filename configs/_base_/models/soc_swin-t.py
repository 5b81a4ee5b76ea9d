# SOC with a Video-Swin-T backbone (official hyper-parameters, configs/refer_youtube_vos.yaml).
# Change the two paths below (or override `model.text_encoder.model_path` /
# `model.backbone.init_cfg.checkpoint` in your config).
text_encoder_path = 'pretrained/roberta-base'  # local HF folder: config, weights, tokenizer
backbone_checkpoint = 'pretrained/swin_tiny_patch244_window877_kinetics400_1k.pth'

embed_dims = 256          # d_model
num_queries = 20          # object queries per frame
num_levels = 4            # 3 backbone levels (strides 8/16/32) + one stride-2 extra conv
num_decoder_layers = 3
dropout = 0.1
num_classes = 1           # 1: "is referred" logit; 65: Ref-YouTube-VOS categories
mask_dims = 8             # mask_kernels_dim: channels of the spatial decoder's mask features

_msda = dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels, num_points=4,
             dropout=dropout, batch_first=True)
_ffn = dict(embed_dims=embed_dims, feedforward_channels=2048, ffn_drop=dropout)

model = dict(
    type='SOC',
    num_queries=num_queries,
    num_feature_levels=num_levels,
    with_box_refine=True,
    data_preprocessor=dict(
        type='RVOSDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(
        type='VideoSwinTransformer', arch='tiny', patch_size=(1, 4, 4), window_size=(8, 7, 7),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')),
    text_encoder=dict(type='RoBERTaTextEncoder', model_path=text_encoder_path,
                      embed_dims=embed_dims, freeze=True, proj_dropout=0.1),
    neck=dict(type='mmdet.ChannelMapper', in_channels=[192, 384, 768], kernel_size=1,
              out_channels=embed_dims, act_cfg=None, bias=True,
              norm_cfg=dict(type='GN', num_groups=32), num_outs=num_levels),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True, offset=-0.5),
    text_positional_encoding=dict(num_feats=embed_dims),
    fusion=dict(embed_dims=embed_dims, num_heads=8),
    encoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=_msda, ffn_cfg=_ffn)),
    decoder=dict(
        num_layers=num_decoder_layers, return_intermediate=True, post_norm_cfg=None,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=dropout, batch_first=True),
            cross_attn_cfg=_msda, ffn_cfg=_ffn)),
    voc=dict(type='VOC', embed_dims=embed_dims, num_heads=8, num_queries=num_queries,
             num_frame_queries=num_queries, num_encoder_layers=3, num_decoder_layers=3,
             feedforward_channels=2048, window_size=0),
    spatial_decoder=dict(type='SOCSpatialDecoder', in_channels=embed_dims,
                         skip_channels=[embed_dims, embed_dims, 96], out_channels=mask_dims),
    bbox_head=dict(
        type='SOCHead', num_classes=num_classes, embed_dims=embed_dims,
        num_pred_layer=num_decoder_layers,
        mask_head=dict(type='DynamicMaskHead', in_channels=mask_dims, channels=8, num_layers=3,
                       rel_coord=True),
        # loss weights = official *_coef
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0, loss_weight=2.0),
        loss_mask=dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0, loss_weight=2.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, naive_dice=True,
                       eps=1.0, loss_weight=5.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=2.0),
        loss_iou=dict(type='SOCGIoULoss', loss_weight=2.0),
        loss_con=dict(type='QuerySentenceContrastiveLoss', loss_weight=1.0)),
    train_cfg=dict(
        # official Ref-YouTube-VOS targets hold only the referred object; A2D configs set False
        referred_only=True,
        # matching costs = official set_cost_* (set_cost_con 0: no text cost)
        assigner=dict(type='VideoHungarianAssigner', match_costs=[
            dict(type='VideoFocalClassCost', weight=2.0),
            dict(type='VideoDiceCost', weight=5.0),
            dict(type='VideoBoxL1Cost', weight=2.0),
            dict(type='VideoGIoUCost', weight=2.0)])),
    # output_layer 'first' = the official eval path (first decoder layer's heads + the last layer's VOC);
    # 'last' uses the last decoder layer's heads.
    test_cfg=dict(output_layer='first', return_all_queries=False))
