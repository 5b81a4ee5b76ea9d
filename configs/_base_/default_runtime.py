default_scope = 'soc_mm'
custom_imports = dict(imports=['soc_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # rank 0 alone writes the test metrics json (MMEngine's LoggerHook lets every rank write it)
    logger=dict(type='RVOSLoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic saves: a kill never leaves a truncated checkpoint or a dangling last_checkpoint
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # draws masks + expression on test clips when enabled (tools/test.py --show-dir)
    visualization=dict(type='RVOSVisualizationHook', draw=False),
)
# re-seeds every iteration, so that a resumed run continues exactly
custom_hooks = [dict(type='IterationSeedHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# DDP wrapper that works on GPUs and on CPU (gloo) alike. Scoped name: MMEngine's runner
# looks the type up in the root registry.
model_wrapper_cfg = dict(type='soc_mm.RVOSDistributedDataParallel', find_unused_parameters=False)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='RVOSVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
