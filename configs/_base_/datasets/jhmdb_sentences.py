# JHMDB-Sentences (evaluation only, with an A2D-Sentences checkpoint, as SOC): per expression,
# 3 frames with a mask, each the centre of a `num_frames` window.
# Dataset layout: soc_mm.datasets.jhmdb_sentences.JHMDB_LAYOUT.
data_root = 'data/jhmdb_sentences/'
# COCO-format ground truth (SOC's jhmdb_sentences_gt_annotations_in_coco_format.json, or
# tools/dataset_converters/create_coco_gt.py); None = built in memory from the masks.
coco_gt_file = None
# SOC's saved draw of the evaluated frames (jhmdb_sentences_samples_metadata.json) to replay;
# None = draw them with `seed`.
samples_file = None
num_frames = 8
eval_short_size, eval_max_size = 320, 576

test_pipeline = [
    dict(type='LoadRVOSFrames'),
    dict(type='LoadJHMDBPuppetMask'),
    dict(type='RVOSRandomResize', short_side=[eval_short_size], max_size=eval_max_size),
    dict(type='PackRVOSInputs', pack_ori_gt_masks=True),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type='JHMDBSentencesDataset', data_root=data_root, num_frames=num_frames,
                 frames_per_video=3, seed=0, samples_file=samples_file, pipeline=test_pipeline))
test_evaluator = dict(type='A2DSentencesMetric', ann_file=coco_gt_file, metric=['iou', 'map'])
test_cfg = dict(type='TestLoop')
