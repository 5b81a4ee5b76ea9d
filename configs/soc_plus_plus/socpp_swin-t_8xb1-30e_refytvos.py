# SOC++, Video-Swin-T, Refer-YouTube-VOS from the Kinetics Video-Swin, as SOC++'s scripts/train_ytb.sh with
# configs/refer_youtube_vos.yaml:
#   train_ytb.sh: -ng 8 -bs 1 (8 GPUs x 1 clip), -ws 8 (8-frame windows), --epochs 30, --lr_drop 20
#     (MultiStepLR x0.1), --backbone video-swin-t (swin_tiny_patch244_window877_kinetics400_1k.pth),
#     --use_proxymmf (num_proxy_query 20);
#   refer_youtube_vos.yaml: lr 1e-4, lr_backbone 1e-5, text_encoder_lr 1e-5 with freeze_text_encoder FALSE
#     (RoBERTa trained; SOC++ keeps its pooler frozen, the model does), weight_decay 1e-4, clip_max_norm 0.1,
#     enable_amp false, seed 42, train/eval short side 360 (max 640), flips on (P = 0.3085), random_color off,
#     num_classes 1 (SOC++'s criterion has no category path: one "is referred" class); the model values of
#     ./_base_/socpp_swin-t.py.
# Data as SOC's (../_base_/datasets/refytvos.py: windows where the referred object appears, the referred
# object as the target). Test: the "valid" videos whole, top-1 query (infer_refytb.py), last decoder layer,
# written as the server's submission.zip.
_base_ = [
    './_base_/socpp_swin-t.py', '../_base_/datasets/refytvos.py', '../_base_/schedules/soc_adamw_30e.py',
    '../_base_/default_runtime.py'
]
lr, text_encoder_lr = 1e-4, 1e-5  # lr: the base schedule's

model = dict(text_encoder=dict(freeze=False))
train_dataloader = dict(dataset=dict(with_category=False))  # one class: no category labels needed

# the base schedule's entry computed from text_encoder_lr
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'text_encoder.model': dict(lr_mult=text_encoder_lr / lr)}))
