"""soc_mm.get_config / get_config_path / list_configs in a source checkout (the installed-wheel layout,
``soc_mm/.mim/configs``, is tested by tests/test_tools/test_wheel_install.py)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.config import utils as mmengine_config_utils

from conftest import REPO_ROOT
import soc_mm
from soc_mm.utils import config_paths
from soc_mm.utils.cli import ConfigOptionError

CONFIGS = osp.join(REPO_ROOT, 'configs')


def test_a_checkout_resolves_to_its_own_configs():
    assert config_paths.get_package_root() == REPO_ROOT  # no soc_mm/.mim in a checkout
    assert config_paths.get_config_dir() == CONFIGS


def test_list_configs_is_every_leaf_config():
    leaves = sorted(osp.relpath(p, CONFIGS) for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
                    if '_base_' not in p.split(osp.sep))
    assert soc_mm.list_configs() == leaves
    assert 'soc/soc_swin-t_refytvos.py' in leaves and 'soc_plus_plus/socpp_swin-t_8xb1-30e_mevis.py' in leaves
    with_bases = soc_mm.list_configs(include_bases=True)
    assert '_base_/models/soc_swin-t.py' in with_bases and 'soc_plus_plus/_base_/socpp_swin-t.py' in with_bases
    assert set(leaves) < set(with_bases)


@pytest.mark.parametrize('name', ['soc/soc_swin-t_refytvos.py', 'soc/soc_swin-t_refytvos',
                                  'soc_mm::soc/soc_swin-t_refytvos.py', 'configs/soc/soc_swin-t_refytvos.py'])
def test_name_forms_give_the_same_file(name):
    assert soc_mm.get_config_path(name) == osp.join(CONFIGS, 'soc', 'soc_swin-t_refytvos.py')


def test_get_config_resolves_bases_and_merges_options():
    cfg = soc_mm.get_config('soc_mm::soc/soc_swin-t_refytvos.py', cfg_options={'train_cfg.max_epochs': 3})
    reference = Config.fromfile(osp.join(CONFIGS, 'soc', 'soc_swin-t_refytvos.py'))
    assert cfg.model.to_dict() == reference.model.to_dict()  # from _base_/models/soc_swin-t.py
    assert cfg.train_cfg.max_epochs == 3 and reference.train_cfg.max_epochs == 30
    with pytest.raises(ConfigOptionError, match='max_epochs'):
        soc_mm.get_config('soc/soc_swin-t_refytvos.py', cfg_options={'train_cfg.max_epochs': 'many'})


@pytest.mark.parametrize('name, error, message', [
    ('soc/soc_swin-t_refytvoss.py', FileNotFoundError, r"no config 'soc/soc_swin-t_refytvoss.py' in .*configs; "
                                                       r'closest: soc/soc_swin-t_refytvos.py'),
    ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', ValueError, "package 'mmdet'"),
    ('/etc/passwd', ValueError, 'is a path'),
    ('soc/../../setup.py', ValueError, 'leaves the configs folder'),
    ('', TypeError, 'non-empty string'),
])
def test_bad_names_are_refused_with_the_reason(name, error, message):
    with pytest.raises(error, match=message):
        soc_mm.get_config_path(name)


def test_no_configs_anywhere_is_an_error_naming_both_places(tmp_path, monkeypatch):
    package_dir = tmp_path / 'site-packages' / 'soc_mm'
    package_dir.mkdir(parents=True)
    monkeypatch.setattr(config_paths, '_PACKAGE_DIR', str(package_dir))
    with pytest.raises(FileNotFoundError, match=r'\.mim/configs .*pip install \..* or .*site-packages/configs'):
        config_paths.get_config_dir()
    (package_dir / '.mim' / 'configs').mkdir(parents=True)  # an installed package's layout wins
    assert config_paths.get_config_dir() == str(package_dir / '.mim' / 'configs')


def test_mmengine_package_syntax_is_opt_in(monkeypatch):
    monkeypatch.setattr(mmengine_config_utils, 'MODULE2PACKAGE', dict(mmengine_config_utils.MODULE2PACKAGE))
    assert 'soc_mm' not in mmengine_config_utils.MODULE2PACKAGE  # importing soc_mm does not add it
    with pytest.raises(AssertionError, match='does not support to load soc_mm config'):
        mmengine_config_utils._get_package_and_cfg_path('soc_mm::soc/soc_swin-t_refytvos.py')
    config_paths.enable_mmengine_package_syntax()
    config_paths.enable_mmengine_package_syntax()
    assert mmengine_config_utils._get_package_and_cfg_path('soc_mm::soc/soc_swin-t_refytvos.py') == \
        ('soc_mm', 'soc/soc_swin-t_refytvos.py')
