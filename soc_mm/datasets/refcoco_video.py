"""RefCOCO/+/g as (pseudo-)clips for SOC's pretraining and joint training."""
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from soc_mm.registry import DATASETS
from .utils import check_dict, check_expression, check_key, check_not_empty, load_json, log_skips, require_path

REFCOCO_LAYOUT = """<data_root>/            (e.g. rvosdata/coco)
  train2014/<file_name>.jpg
  <dataset>/instances_<dataset>_<split>.json   (MDETR-style: one image entry per referring expression with
                                               "caption", "file_name", "height", "width"; its annotations =
                                               the referred object with "segmentation", "bbox", "iscrowd")
  dataset in refcoco, refcoco+, refcocog; split in train, val"""


@DATASETS.register_module()
class RefCOCOVideoDataset(BaseDataset):
    """RefCOCO/+/g referring expressions, one sample per expression (MDETR-style json, as SOC reads).

    Each sample is a single image (T=1); the pipeline's ``ImageToPseudoClip`` turns it into a
    ``num_frames`` pseudo-clip for joint training with Ref-YTVOS (SOC's ``ref2seq``), or leaves T=1
    for pretraining (SOC's ``refercoco``). Crowd annotations and zero-area boxes are dropped (as SOC's
    ``ConvertCocoPolysToMask``); expressions left without an object are skipped with a logged count
    (SOC resamples them at run time).

    Args:
        data_root (str): the coco folder (layout: ``REFCOCO_LAYOUT``).
        dataset (str): ``'refcoco'``, ``'refcoco+'`` or ``'refcocog'``.
        split (str): ``'train'`` or ``'val'``.
        img_dir (str): image folder relative to ``data_root``.
        ann_file (str, optional): explicit annotation file (default ``<dataset>/instances_<dataset>_<split>.json``).
    """
    METAINFO = dict(classes=('object', ), dataset_name='refcoco')
    LAYOUT = REFCOCO_LAYOUT

    def __init__(self, data_root: str, dataset: str = 'refcoco', split: str = 'train', img_dir: str = 'train2014',
                 ann_file: str = '', **kwargs):
        if dataset not in ('refcoco', 'refcoco+', 'refcocog'):
            raise ValueError(f"RefCOCOVideoDataset: dataset must be refcoco, refcoco+ or refcocog, got {dataset!r}")
        self.ref_dataset, self.split, self.img_dir = dataset, split, img_dir
        ann_file = ann_file or osp.join(dataset, f'instances_{dataset}_{split}.json')
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(data_root=data_root, ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        from mmdet.datasets.api_wrappers import COCO
        require_path(self.data_root, 'RefCOCO data_root', self.LAYOUT, is_dir=True)
        img_root = require_path(osp.join(self.data_root, self.img_dir), 'RefCOCO images', self.LAYOUT, is_dir=True)
        data = load_json(self.ann_file, f'RefCOCO annotations ({self.ref_dataset} {self.split})', self.LAYOUT)
        self._check_annotations(data)
        coco = COCO()  # indexed from the checked dict (the file is read once)
        coco.dataset = data
        coco.createIndex()
        data_list, skipped = [], []
        img_ids = coco.get_img_ids()
        for img_id in img_ids:
            info = coco.load_imgs([img_id])[0]
            field = f'images[id={img_id}]'
            for key in ('caption', 'file_name', 'height', 'width'):
                if key not in info:
                    raise ValueError(f'RefCOCO: image entry {img_id} of {self.ann_file} lacks {key!r} '
                                     f'(expected an MDETR-style json)')
            expression = check_expression(info['caption'], self.ann_file, info['file_name'], img_id)
            anns = coco.load_anns(coco.get_ann_ids(img_ids=[img_id]))
            for ann in anns:
                bbox = check_key(ann, 'bbox', self.ann_file, f'annotations[id={ann.get("id")}] of {field}')
                if not isinstance(bbox, list) or len(bbox) != 4:
                    raise ValueError(f'{self.ann_file}: field annotations[id={ann.get("id")}]["bbox"] must be '
                                     f'[x, y, w, h], got {bbox!r}')
            anns = [a for a in anns if not a.get('iscrowd', 0) and a['bbox'][2] > 0 and a['bbox'][3] > 0]
            if not anns:
                skipped.append(str(img_id))
                continue
            ann = anns[0]  # one referred object per expression
            stem, suffix = osp.splitext(info['file_name'])
            data_list.append(dict(
                dataset=f'{self.ref_dataset}', video_id=stem, exp_id=str(img_id),
                expression=expression, frame_dir=img_root, img_suffix=suffix,
                frame_ids=[stem], segmentation=ann['segmentation'], bbox=ann['bbox'],
                category_id=ann.get('category_id', 0), img_id=img_id, valid_frame_idx=None))
        log_skips('RefCOCOVideoDataset', 'expressions without a valid (non-crowd, non-empty) object', skipped,
                  len(img_ids))
        return data_list

    def _check_annotations(self, data: dict) -> None:
        """Check the top-level structure of an MDETR-style json (``images`` a non-empty list of dicts with an
        ``id``, ``annotations`` a list of dicts with an ``image_id``) before pycocotools indexes it."""
        path = self.ann_file
        check_dict(data, path, '<top level>', 'a dict with "images" and "annotations" (MDETR-style json)')
        for key, expected in (('images', 'one entry per referring expression'),
                              ('annotations', 'the referred object of each expression')):
            items = check_key(data, key, path, '<top level>')
            if not isinstance(items, list):
                raise ValueError(f'{path}: field {key} must be a list ({expected}), got {type(items).__name__}')
            for i, item in enumerate(items):
                check_key(check_dict(item, path, f'{key}[{i}]', 'a dict'), 'id' if key == 'images' else 'image_id',
                          path, f'{key}[{i}]')
        check_not_empty(data['images'], path, 'images', 'at least one image entry (one per referring expression)')
