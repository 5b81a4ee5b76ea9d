"""``--cfg-options`` errors name the option and what was expected (tools/train.py, tools/test.py)."""
import argparse
import os.path as osp
import runpy
import sys

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from soc_mm.utils.cli import CfgOptionsAction, ConfigOptionError, merge_cfg_options

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')


def _parser():
    parser = argparse.ArgumentParser(prog='tool')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser


def test_option_without_equals_names_it(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(['--cfg-options', 'train_cfg.max_iters=3', 'model.num_queries'])
    err = capsys.readouterr().err
    assert "'model.num_queries' is not key=value" in err


def _cfg():
    return Config(dict(train_cfg=dict(max_iters=100, by_epoch=False), model=dict(
        num_queries=5, flag=True, name='soc', sizes=[1, 2], layers=[dict(a=1), dict(a=2)], opt=None)))


@pytest.mark.parametrize('key,value,expected', [
    ('train_cfg.max_iters', 'abc', 'expected a number'),
    ('train_cfg.by_epoch', 'yes', 'expected a boolean'),
    ('model.sizes', 3, r'expected a list'),
    ('model.num_queries', [1, 2], 'expected a number'),
    ('model.layers.1.a', 'x', 'expected a number'),
    ('model', 1, 'expected a dict'),
])
def test_wrong_type_names_key_and_expected_type(key, value, expected):
    cfg = _cfg()
    with pytest.raises(ConfigOptionError, match=rf'{key.replace(".", r"[.]")}=.*{expected}'):
        merge_cfg_options(cfg, {key: value})
    assert cfg.to_dict() == _cfg().to_dict()  # nothing half-merged


def test_right_types_and_new_keys_merge():
    cfg = _cfg()
    merge_cfg_options(cfg, {'train_cfg.max_iters': 7.5, 'model.name': 2024, 'model.opt': [1], 'model.flag': False,
                            'model.layers.0.a': 3, 'model.sizes': (4, 5), 'model.new_key': 'x',
                            'model.num_queries': None})
    assert cfg.train_cfg.max_iters == 7.5 and cfg.model.name == 2024 and cfg.model.opt == [1]
    assert cfg.model.flag is False and cfg.model.layers[0].a == 3 and list(cfg.model.sizes) == [4, 5]
    assert cfg.model.new_key == 'x' and cfg.model.num_queries is None


def test_setting_inside_a_scalar_names_the_key():
    with pytest.raises(ConfigOptionError, match=r'cannot set model[.]num_queries[.]x=1'):
        merge_cfg_options(_cfg(), {'model.num_queries.x': 1})


def test_tools_report_the_option(tmp_path, monkeypatch):
    ckpt = tmp_path / 'c.pth'
    import torch
    torch.save(dict(state_dict={}), ckpt)
    monkeypatch.setattr(sys, 'argv', ['test.py', TINY_CONFIG, str(ckpt), '--cfg-options',
                                      'model.num_queries=many'])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(osp.join(REPO_ROOT, 'tools', 'test.py'), run_name='__main__')
    message = str(info.value.code)
    assert message.startswith('tools/test.py: error: --cfg-options:')
    assert "model.num_queries='many': expected a number (the config has 5)" in message
