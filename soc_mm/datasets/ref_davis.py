"""Ref-DAVIS17: DAVIS-2017 converted to the Ref-YTVOS layout (evaluation)."""
from typing import Dict, Optional

from mmengine.logging import MMLogger

from soc_mm.registry import DATASETS
from .ref_youtube_vos import RefYouTubeVOSDataset

REF_DAVIS_LAYOUT = """<data_root>/   (DAVIS-2017 converted with the Ref-YTVOS layout)
  valid/JPEGImages/<video>/<frame>.jpg
  valid/Annotations/<video>/<frame>.png      (palette PNG, pixel value = object id)
  meta_expressions/valid/meta_expressions.json
      (4 expressions per object: exp_id = 4*k + a, a = annotator set 0..3:
       annotator 1 first-frame, annotator 1 full-video, annotator 2 first-frame, annotator 2 full-video)"""


@DATASETS.register_module()
class RefDAVIS17Dataset(RefYouTubeVOSDataset):
    """Ref-DAVIS17 validation: whole videos, one sample per expression, ground-truth masks loaded.

    Adds the metainfo ``annotator`` (int 0..3, ``int(exp_id) % 4``) naming which of the four expression
    sets the sample belongs to; J&F is reported per annotator set and averaged.

    Args:
        data_root (str): dataset root (layout: ``REF_DAVIS_LAYOUT``).
        split (str): ``'valid'`` (``'train'`` also reads, with ``num_frames`` windows).
        load_gt (bool): read the masks (default True; metrics need them).
    """
    METAINFO = dict(classes=('object', ), dataset_name='ref_davis17')
    LAYOUT = REF_DAVIS_LAYOUT

    def __init__(self, data_root: str, split: str = 'valid', load_gt: Optional[bool] = True,
                 with_category: bool = False, **kwargs):
        super().__init__(data_root=data_root, split=split, load_gt=load_gt, with_category=with_category,
                         **kwargs)

    def _split_videos(self) -> Dict[str, dict]:
        # Ref-DAVIS has no competition test split to remove.
        videos = self._expressions(self.split)
        MMLogger.get_current_instance().info(f'{type(self).__name__}: {len(videos)} {self.split} videos')
        return videos

    def _extra_info(self, exp_id: str, exp: dict) -> dict:
        try:
            return dict(annotator=int(exp_id) % 4)
        except ValueError:
            raise ValueError(f'{type(self).__name__}: expression id {exp_id!r} is not an integer; the '
                             f'annotator set is read from it (exp_id = 4*k + annotator)') from None
