"""RVOSTestOptions (soc_mm/models/inference/test_options.py): the one reading of ``model.test_cfg``
(defaults, checks naming the key, renamed / moved / unknown keys), and every config's ``test_cfg``."""
import dataclasses
import glob
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from soc_mm.models.inference import STREAM_CLIP_LEN, RVOSTestOptions
from soc_mm.models.inference.test_options import TEST_OPTION_NAMES


def test_defaults_one_per_option():
    options = RVOSTestOptions.from_cfg(None)
    assert options == RVOSTestOptions.from_cfg({}) == RVOSTestOptions()
    assert options.to_cfg() == dict(output_layer='first', object_selection='top1', score_thr=None,
                                    allow_no_target=False, return_all_queries=False, presence_thr=None,
                                    clip_len=None, expressions_per_batch=None, share_clips=True, bf16=False,
                                    link_clips=False, link_margin=0.2)
    assert set(TEST_OPTION_NAMES) == set(options.to_cfg())
    assert STREAM_CLIP_LEN == 36  # what the API reads at a time where the options say "whole video"
    assert RVOSTestOptions.from_cfg(options) is options
    assert RVOSTestOptions.from_cfg(options.to_cfg()) == options


def test_values_are_read_and_normalised():
    options = RVOSTestOptions.from_cfg(dict(output_layer=-1, object_selection='threshold', score_thr=0,
                                            allow_no_target=True, return_all_queries=True,
                                            clip_len=np.int64(8), expressions_per_batch=2, share_clips=False,
                                            bf16=True))
    assert options.score_thr == 0.0 and isinstance(options.score_thr, float)
    assert options.clip_len == 8 and type(options.clip_len) is int
    assert options.layer_index(4) == 3 and not options.share_clips and options.bf16
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.clip_len = 2
    assert options.as_mapping()['clip_len'] == 8
    with pytest.raises(TypeError):
        options.as_mapping()['clip_len'] = 2


@pytest.mark.parametrize('cfg, match', [
    (dict(output_layer='middle'),
     "test_cfg.output_layer must be 'first', 'last' or a decoder layer index, got 'middle'"),
    (dict(output_layer=True), 'test_cfg.output_layer must be .* got True'),
    (dict(output_layer=1.0), 'test_cfg.output_layer must be .* got 1.0'),
    (dict(object_selection='top2'), r"test_cfg.object_selection must be one of \('top1', 'threshold'\), got 'top2'"),
    (dict(object_selection='threshold'), "test_cfg.score_thr is required with test_cfg.object_selection='threshold'"),
    (dict(score_thr=1.5), r'test_cfg.score_thr must be a probability in \[0, 1\], got 1.5'),
    (dict(score_thr=True), 'test_cfg.score_thr must be a probability .* got True'),
    (dict(score_thr='0.5'), "test_cfg.score_thr must be a probability .* got '0.5'"),
    (dict(allow_no_target=1), 'test_cfg.allow_no_target must be True or False, got 1'),
    (dict(allow_no_target=True), "test_cfg.allow_no_target=True needs test_cfg.object_selection='threshold'"),
    (dict(return_all_queries='yes'), "test_cfg.return_all_queries must be True or False, got 'yes'"),
    (dict(clip_len=0), 'test_cfg.clip_len must be None or an int >= 1, got 0'),
    (dict(clip_len=2.0), 'test_cfg.clip_len must be None or an int >= 1, got 2.0'),
    (dict(clip_len=True), 'test_cfg.clip_len must be None or an int >= 1, got True'),
    (dict(expressions_per_batch=-1), 'test_cfg.expressions_per_batch must be None or an int >= 1, got -1'),
    (dict(share_clips=None), 'test_cfg.share_clips must be True or False, got None'),
    (dict(bf16='yes'), "test_cfg.bf16 must be True or False, got 'yes'"),
    (dict(presence_thr=-0.1), r'test_cfg.presence_thr must be a probability in \[0, 1\], got -0.1'),
    (dict(link_clips='on'), "test_cfg.link_clips must be True or False, got 'on'"),
    (dict(link_margin=None), r'test_cfg.link_margin must be a probability difference in \[0, 1\], got None'),
    (dict(link_margin=2), r'test_cfg.link_margin must be a probability difference in \[0, 1\], got 2'),
])
def test_each_bad_value_is_named(cfg, match):
    with pytest.raises(ValueError, match=match):
        RVOSTestOptions.from_cfg(cfg)
    with pytest.raises(ValueError, match=match):  # the same check when changing a parsed object
        RVOSTestOptions().replace(**cfg)


def test_unknown_key_names_the_closest_known_key():
    with pytest.raises(ValueError, match=r'test_cfg\.clip_length is not a test option \(did you mean '
                                         r'test_cfg\.clip_len\? known: output_layer, '):
        RVOSTestOptions.from_cfg(dict(clip_len=4, clip_length=8))
    with pytest.raises(ValueError, match=r'test_cfg\.shared is not a test option \(did you mean '
                                         r'test_cfg\.share_clips\?'):
        RVOSTestOptions().replace(shared=False)
    with pytest.raises(ValueError, match=r'test_cfg\.max_per_img is not a test option \(known: '):
        RVOSTestOptions.from_cfg(dict(max_per_img=100))  # nothing close: no guess


def test_renamed_and_moved_keys_say_what_to_write():
    with pytest.raises(ValueError, match=r"test_cfg\.output_level was renamed test_cfg\.output_layer .*: replace "
                                         r"test_cfg\.output_level='last' by test_cfg\.output_layer='last' in the "
                                         r"config"):
        RVOSTestOptions.from_cfg(dict(output_level='last'))
    with pytest.raises(ValueError, match=r'test_cfg\.fast_kernels moved to the model .*: replace '
                                         r'test_cfg\.fast_kernels=False by model\.fast_kernels=False in the config'):
        RVOSTestOptions.from_cfg(dict(fast_kernels=False))
    with pytest.raises(ValueError, match='output_level was renamed'):
        RVOSTestOptions().replace(output_level=0)


def test_output_layer_against_the_model():
    assert RVOSTestOptions().layer_index(6) == 0
    assert RVOSTestOptions(output_layer='last').layer_index(6) == 5
    assert RVOSTestOptions(output_layer=-2).layer_index(6) == 4
    with pytest.raises(ValueError, match=r"test_cfg\.output_layer must be 'first', 'last' or a decoder layer index "
                                         r'in \[-2, 2\), got 2'):
        RVOSTestOptions.from_cfg(dict(output_layer=2), num_layers=2)
    assert RVOSTestOptions.from_cfg(dict(output_layer=1), num_layers=2).output_layer == 1


def test_with_cfg_options():
    """``--cfg-options model.test_cfg.clip_len=8``: a ConfigDict (the official config translation's
    ``test_cfg=dict(return_all_queries=...)`` is built in tests/test_official/test_official_config.py)."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'soc', 'soc_swin-t_refytvos.py'))
    cfg.merge_from_dict({'model.test_cfg.clip_len': 8})
    options = RVOSTestOptions.from_cfg(cfg.model.test_cfg, num_layers=cfg.model.decoder.num_layers)
    assert options.clip_len == 8 and options.layer_index(cfg.model.decoder.num_layers) == 0


def test_every_config_test_cfg_parses():
    configs = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'soc', '*.py')))
    assert len(configs) > 10
    for path in configs:
        model = Config.fromfile(path).model
        RVOSTestOptions.from_cfg(model.get('test_cfg'), num_layers=model.decoder.num_layers)
