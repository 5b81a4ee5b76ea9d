"""The tiny SOC++ (configs/soc_plus_plus/socpp_tiny_synthetic.py) trained and tested as a user runs it:
synthetic MeViS and a tiny text encoder, ``tools/train.py`` for a few iterations, ``tools/test.py`` on the last
checkpoint (J&F on valid_u). Checks the plumbing (SOC++'s model, its MeViS windows and merged targets, its
inference), not the accuracy."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT as REPO
from soc_mm.apis.demo_runner import read_metrics, schedule_overrides
from soc_mm.datasets import synthetic
from soc_mm.datasets.utils import read_json
from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder

CONFIG = osp.join(REPO, 'configs', 'soc_plus_plus', 'socpp_tiny_synthetic.py')
MAX_ITERS = 4
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def test_config_is_the_tiny_soc_as_soc_plus_plus():
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')).model.to_dict()
    model = Config.fromfile(CONFIG).model.to_dict()
    assert (model.pop('type'), tiny.pop('type')) == ('SOCPlusPlus', 'SOC')
    assert model.pop('num_proxy_queries') == model['num_queries'] == 5  # SOC++: as many proxies as queries
    assert model.pop('query_fusion') == dict(num_heads=8, dropout=0.1)
    assert (model['voc'].pop('type'), tiny['voc'].pop('type')) == ('FrameScoredVOC', 'VOC')
    assert model['voc']['window_size'] == 0
    assert model.pop('test_cfg') == dict(tiny.pop('test_cfg'), output_layer='last', object_selection='top1',
                                         clip_len=None)
    assert model['text_encoder'].pop('model_path') == 'data/synthetic_mevis/tiny_roberta'
    del tiny['text_encoder']['model_path']
    assert model == tiny  # otherwise the tiny SOC


def test_tiny_socpp_trains_and_tests(tmp_path):
    root = str(tmp_path / 'mevis') + '/'
    synthetic.generate_mevis(root, num_train=3, num_valid_u=2, num_valid=0, num_frames=8, size=(48, 48),
                             exit_prob=0.5, seed=0)
    texts = [e['exp'] for v in read_json(root + 'train/meta_expressions.json')['videos'].values()
             for e in v['expressions'].values()]
    text_encoder = make_tiny_text_encoder(texts, str(tmp_path / 'tiny_roberta'))
    paths = [f'train_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
             f'test_evaluator.meta_file={root}valid_u/meta_expressions.json',
             f'test_evaluator.mask_dict_file={root}valid_u/mask_dict.json',
             f'model.text_encoder.model_path={text_encoder}']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    work_dir = str(tmp_path / 'train')
    train = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
                            *paths, *schedule_overrides(MAX_ITERS), 'default_hooks.logger.interval=1'],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = train.stdout + train.stderr
    assert train.returncode == 0, out[-4000:]
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out and 'loss_dice' in out
    checkpoint = osp.join(work_dir, f'iter_{MAX_ITERS}.pth')
    assert osp.isfile(checkpoint)
    test_dir = str(tmp_path / 'test')
    test = subprocess.run([sys.executable, 'tools/test.py', CONFIG, checkpoint, '--work-dir', test_dir,
                           '--cfg-options', *paths], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    metrics = read_metrics(test_dir)
    for key in ('mevis/J', 'mevis/F', 'mevis/J&F'):
        assert 0.0 <= metrics[key] <= 1.0, metrics
