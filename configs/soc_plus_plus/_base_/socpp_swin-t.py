# SOC++ with a Video-Swin-T backbone: SOC's model (../../_base_/models/soc_swin-t.py) with SOC++'s changes.
# SOC++'s yamls (configs/{mevis,refer_youtube_vos,a2d_sentences,jhmdb_sentences,davis}.yaml) share every
# model value with SOC's refer_youtube_vos.yaml, which the base holds (checked value by value in
# tests/test_configs/test_socpp_configs.py):
#   DeformTransformer: d_model 256, nheads 8, enc_layers 3, dec_layers 3, dim_feedforward 2048, dropout 0.1,
#     num_queries 20, num_feature_levels 4, enc/dec_n_points 4, two_stage False; with_box_refine True;
#   VOC: input_dim 256, nheads 8, num_queries 20, num_frame_queries 20, enc_layers 3, dec_layers 3,
#     dim_feedforward 2048, window_size 0;
#   mask head: mask_kernels_dim 8, controller_layers 3, dynamic_mask_channels 8, rel_coord True;
#   num_classes 1; aux_loss True; vl_loss True; matching costs set_cost_cls 2, set_cost_dice 5,
#   set_costs_box 2, set_costs_giou 2, set_cost_con 0; loss coefficients class 2, sigmoid_focal 2, dice 5,
#   box 2, giou 2, con 1, eos 0.1 (no effect: see QuerySentenceContrastiveLoss);
#   Video-Swin-T from swin_tiny_patch244_window877_kinetics400_1k.pth (scripts/train_*.sh -bpp).
# SOC++'s own values: num_proxy_query 20 (--use_proxymmf in every training script), the query fusion's
# 8 heads and dropout 0.1, the frame-scored cluster decoder (window_size 0), and the last decoder layer's
# outputs at test time (SOC's base evaluates the first).
_base_ = ['../../_base_/models/soc_swin-t.py']
num_proxy_queries = 20    # num_proxy_query

model = dict(
    type='SOCPlusPlus',
    num_proxy_queries=num_proxy_queries,
    query_fusion=dict(num_heads=8, dropout=0.1),
    voc=dict(type='FrameScoredVOC', window_size=0),
    test_cfg=dict(output_layer='last'))
