"""Shared by the dataset tests: pipelines, a dataset builder and generated mini-datasets in the real on-disk
formats (soc_mm.datasets.synthetic)."""
import numpy as np
from PIL import Image

from soc_mm.datasets import synthetic
from soc_mm.registry import DATASETS

T = 4
YTVOS_TRAIN = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'), dict(type='PackRVOSInputs')]
YTVOS_AUG = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'), dict(type='RVOSRandomFlip', prob=0.5),
             dict(type='ClipPhotometricDistortion', prob=0.5),
             dict(type='RVOSRandomResize', short_side=[32, 40], max_size=64),
             dict(type='RVOSRandomCrop', min_size=24, max_size=40, prob=0.5), dict(type='PackRVOSInputs')]
EVAL_PALETTE = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'),
                dict(type='RVOSRandomResize', short_side=32, max_size=64),
                dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]

COCO_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadRefCocoMasks'),
             dict(type='ImageToPseudoClip', num_frames=T, shuffle=False),
             dict(type='RVOSRandomResize', short_side=40, max_size=64), dict(type='PackRVOSInputs')]


def build(cfg):
    """A dataset of soc_mm's registry from its config dict."""
    return DATASETS.build(cfg)


def read_ids(path):
    """The object ids [H, W] of a palette PNG."""
    return np.asarray(Image.open(path))


def generate_ytvos(tmp_path_factory):
    """Ref-YouTube-VOS (3 train, 2 valid, 1 test videos of 10 frames): (root, manifest)."""
    root = str(tmp_path_factory.mktemp('ytvos'))
    manifest = synthetic.generate_ref_youtube_vos(root, num_train=3, num_valid=2, num_test=1, num_frames=10,
                                                  size=(48, 64), exit_prob=0.7, seed=3)
    return root, manifest


def generate_refcoco(tmp_path_factory):
    """RefCOCO (3 train, 1 val images): (root, manifest)."""
    root = str(tmp_path_factory.mktemp('coco'))
    return root, synthetic.generate_refcoco(root, num_images=dict(train=3, val=1), size=(40, 56))


def small_ytvos(tmp_path, **kwargs):
    """A small Ref-YouTube-VOS under ``tmp_path``/ytvos (``kwargs`` override the generator's): (root, manifest)."""
    root = str(tmp_path / 'ytvos')
    kwargs = dict(dict(num_train=2, num_valid=1, num_test=1, num_frames=5, size=(32, 40)), **kwargs)
    return root, synthetic.generate_ref_youtube_vos(root, **kwargs)
