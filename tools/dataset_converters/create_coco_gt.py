"""Write the COCO-format ground truth used by the A2D-Sentences / JHMDB-Sentences mAP metric (as SOC's
``create_gt_in_coco_format``); the file loads with ``pycocotools.coco.COCO``.

    python tools/dataset_converters/create_coco_gt.py a2d_sentences data/a2d_sentences \
        data/a2d_sentences/a2d_sentences_test_annotations_in_coco_format.json --split test
    python tools/dataset_converters/create_coco_gt.py jhmdb_sentences data/jhmdb_sentences \
        data/jhmdb_sentences/jhmdb_sentences_gt_annotations_in_coco_format.json --seed 0

Image ids: ``v_<video>_f_<frame>_i_<instance>`` (A2D) and ``v_<video>_f_<frame>`` (JHMDB), the ``img_id``
metainfo of the packed samples. One annotation per image, category 1 ``'dummy_class'``
(``soc_mm.structures.coco_gt_dict``, the layout of the metrics' in-memory ground truth too). JHMDB uses
the same frame draw as ``JHMDBSentencesDataset`` (``--seed`` / ``--samples-file`` must match the test config).
"""
import argparse

from mmengine.registry import init_default_scope

from soc_mm.datasets import JHMDBSentencesDataset, create_a2d_coco_gt, create_jhmdb_coco_gt


def parse_args():
    parser = argparse.ArgumentParser(description='Create COCO-format ground truth for A2D/JHMDB-Sentences')
    parser.add_argument('dataset', choices=['a2d_sentences', 'jhmdb_sentences'])
    parser.add_argument('data_root')
    parser.add_argument('out_file')
    parser.add_argument('--split', default='test', help='A2D split (train/test)')
    parser.add_argument('--seed', type=int, default=0, help='JHMDB frame-draw seed')
    parser.add_argument('--samples-file', default=None, help="JHMDB: SOC's saved samples metadata json")
    return parser.parse_args()


def main():
    args = parse_args()
    init_default_scope('soc_mm')
    if args.dataset == 'a2d_sentences':
        gt = create_a2d_coco_gt(args.data_root, args.out_file, split=args.split)
    else:
        dataset = JHMDBSentencesDataset(data_root=args.data_root, seed=args.seed, samples_file=args.samples_file,
                                        pipeline=[])
        gt = create_jhmdb_coco_gt(dataset, args.out_file)
    print(f"wrote {len(gt['images'])} images / {len(gt['annotations'])} annotations to {args.out_file}")


if __name__ == '__main__':
    main()
