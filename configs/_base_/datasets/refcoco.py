# RefCOCO + RefCOCO+ + RefCOCOg (SOC's image pretraining): every expression is a one-frame clip.
# Validation: the three val splits, each with its own COCO segm mAP / IoU (as SOC's pretrainer).
# Dataset layout: soc_mm.datasets.refcoco_video.REFCOCO_LAYOUT (MDETR-style jsons).
data_root = 'data/coco/'
img_dir = 'train2014'
ref_datasets = ['refcoco', 'refcoco+', 'refcocog']
train_short_size, train_max_size = 360, 640
eval_short_size, eval_max_size = 360, 640
flip_prob = 0.5               # SOC's image pretraining flips with random.random() < 0.5

train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRefCocoMasks'),
    dict(type='RVOSRandomFlip', prob=flip_prob),
    dict(type='RVOSRandomResize', short_side=[train_short_size], max_size=train_max_size),
    dict(type='PackRVOSInputs'),
]
test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='RVOSRandomResize', short_side=[eval_short_size], max_size=eval_max_size),
    dict(type='PackRVOSInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type='RefCOCOVideoDataset', data_root=data_root, dataset=name, split='train',
                 img_dir=img_dir, pipeline=train_pipeline) for name in ref_datasets
        ]))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        # mmdet's ConcatDataset records the slice of each dataset for MultiDatasetsEvaluator
        type='mmdet.ConcatDataset',
        datasets=[
            dict(type='RefCOCOVideoDataset', data_root=data_root, dataset=name, split='val',
                 img_dir=img_dir, pipeline=test_pipeline) for name in ref_datasets
        ]))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='mmdet.MultiDatasetsEvaluator',
    metrics=[
        dict(type='RefCOCOSegMetric', ann_file=f'{data_root}{name}/instances_{name}_val.json', prefix=name)
        for name in ref_datasets
    ],
    dataset_prefixes=ref_datasets)
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
