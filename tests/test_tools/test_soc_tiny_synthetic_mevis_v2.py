"""The tiny SOC on synthetic MeViS v2 (configs/soc/soc_tiny_synthetic_mevis_v2.py) trained and tested as a user
runs it: ``tools/train.py`` for a few iterations on generated v2 data (meta_expressions_v2.json, no-target and
multi-object expressions, audio files), ``tools/test.py`` on the last checkpoint (J&F on valid_u, the
predictions in the server layout), and the same PNGs scored by ``eval_rvos.py mevis``. Checks the plumbing, not
the accuracy."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT as REPO
from soc_mm.apis.demo_runner import read_metrics, schedule_overrides
from soc_mm.datasets.synthetic_mevis_v2 import generate_mevis_v2
from soc_mm.datasets.utils import read_json
from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder

CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_mevis_v2.py')
MAX_ITERS = 4
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def test_config_differs_from_v1_only_in_the_data():
    v1 = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_mevis.py'))
    v2 = Config.fromfile(CONFIG)
    assert v2.train_dataloader.dataset.version == v2.test_dataloader.dataset.version == 'v2'
    assert v2.test_evaluator[0].meta_file.endswith('valid_u/meta_expressions_v2.json')
    v1_model, v2_model = v1.model.to_dict(), v2.model.to_dict()
    assert v2_model['text_encoder'].pop('model_path') == 'data/synthetic_mevis_v2/tiny_roberta'
    del v1_model['text_encoder']['model_path']
    assert v1_model == v2_model
    assert v1.train_cfg == v2.train_cfg and v1.optim_wrapper == v2.optim_wrapper


def test_tiny_soc_trains_and_tests_on_mevis_v2(tmp_path):
    root = str(tmp_path / 'mevis_v2') + '/'
    generate_mevis_v2(root, num_train=3, num_valid_u=2, num_valid=0, num_frames=6, size=(48, 48), seed=0)
    texts = [e['exp'] for v in read_json(root + 'train/meta_expressions_v2.json')['videos'].values()
             for e in v['expressions'].values()]
    text_encoder = make_tiny_text_encoder(texts, str(tmp_path / 'tiny_roberta'))
    pred_dir = str(tmp_path / 'pred')
    paths = [f'train_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
             f'test_evaluator.0.meta_file={root}valid_u/meta_expressions_v2.json',
             f'test_evaluator.0.mask_dict_file={root}valid_u/mask_dict.json',
             f'test_evaluator.1.meta_file={root}valid_u/meta_expressions_v2.json',
             f'test_evaluator.1.output_dir={pred_dir}', f'model.text_encoder.model_path={text_encoder}']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    work_dir = str(tmp_path / 'train')
    train = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
                            *paths, *schedule_overrides(MAX_ITERS), 'default_hooks.logger.interval=1'],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = train.stdout + train.stderr
    assert train.returncode == 0, out[-4000:]
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out and 'loss_dice' in out
    checkpoint = osp.join(work_dir, f'iter_{MAX_ITERS}.pth')
    test_dir = str(tmp_path / 'test')
    test = subprocess.run([sys.executable, 'tools/test.py', CONFIG, checkpoint, '--work-dir', test_dir,
                           '--cfg-options', *paths], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    metrics = read_metrics(test_dir)
    for key in ('mevis/J', 'mevis/F', 'mevis/J&F'):
        assert 0.0 <= metrics[key] <= 1.0, metrics
    # the PNGs the test wrote score the same offline
    offline = subprocess.run([sys.executable, 'tools/analysis_tools/eval_rvos.py', 'mevis',
                              osp.join(pred_dir, 'Annotations'), '--meta-expressions', root + 'valid_u',
                              '--masks', root + 'valid_u/mask_dict.json'], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=600)
    assert offline.returncode == 0, offline.stderr[-3000:]
    printed = dict(line.split(': ') for line in offline.stdout.splitlines())
    for key in ('J', 'F', 'J&F'):
        assert abs(float(printed[key]) - metrics[f'mevis/{key}']) < 1e-9
