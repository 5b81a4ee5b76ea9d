# SOC's joint training: RefCOCO/+/g expressions as pseudo-clips of `num_frames` warped copies of
# the image (SOC's coco2seq) concatenated with Refer-YouTube-VOS windows; test on Ref-YTVOS valid.
_base_ = ['./refytvos.py']

coco_root = 'data/coco/'
coco_img_dir = 'train2014'
ref_datasets = ['refcoco', 'refcoco+', 'refcocog']

coco_train_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadRefCocoMasks'),
    dict(type='ImageToPseudoClip', num_frames={{_base_.num_frames}}),
    dict(type='RVOSRandomFlip', prob={{_base_.flip_prob}}),
    dict(type='RVOSRandomResize', short_side=[{{_base_.train_short_size}}], max_size={{_base_.train_max_size}}),
    dict(type='PackRVOSInputs'),
]

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['classes', 'dataset_name'],
        datasets=[
            dict(type='RefCOCOVideoDataset', data_root=coco_root, dataset=name, split='train',
                 img_dir=coco_img_dir, pipeline=coco_train_pipeline) for name in ref_datasets
        ] + [{{_base_.train_dataloader.dataset}}]))
