"""The tiny SOC on synthetic Long-RVOS (configs/soc/soc_tiny_synthetic_long_rvos.py) trained and tested as a
user runs it: generated data and a tiny text encoder, ``tools/train.py`` for a few iterations, ``tools/test.py``
on the last checkpoint. The test reports LongRVOSMetric's tables and writes the predictions in the official
layout; the offline evaluator on those PNGs gives the same numbers. Checks the plumbing, not the accuracy."""
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT as REPO
from soc_mm.apis.demo_runner import read_metrics, schedule_overrides
from soc_mm.datasets.synthetic_long_rvos import generate_long_rvos
from soc_mm.datasets.utils import read_json
from soc_mm.evaluation.functional.long_rvos import evaluate_long_rvos_predictions
from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder

CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_long_rvos.py')
MAX_ITERS = 4
NUM_FRAMES = 30  # longer than the config's clip_len (24): held-out videos are run as two clips
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def test_config_is_the_tiny_soc_on_long_rvos():
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py'))
    cfg = Config.fromfile(CONFIG)
    model, tiny_model = cfg.model.to_dict(), tiny.model.to_dict()
    assert model.pop('test_cfg') == dict(tiny_model.pop('test_cfg', {}), clip_len=cfg.clip_len)
    assert model['text_encoder'].pop('model_path') == 'data/synthetic_long_rvos/tiny_roberta'
    del tiny_model['text_encoder']['model_path']
    assert model == tiny_model  # otherwise the tiny SOC
    assert cfg.train_dataloader.dataset.type == cfg.test_dataloader.dataset.type == 'LongRVOSDataset'
    assert cfg.train_dataloader.dataset.frame_sampling == 'random'
    assert [e['type'] for e in cfg.test_evaluator] == ['LongRVOSMetric', 'RefYTVOSSubmissionMetric']


def test_tiny_soc_trains_and_tests_on_long_rvos(tmp_path):
    root = str(tmp_path / 'long_rvos') + '/'
    generate_long_rvos(root, num_train=2, num_valid=2, num_test=0, num_frames=NUM_FRAMES, size=(48, 48), seed=0)
    texts = [e['exp'] for v in read_json(root + 'train/meta_expressions.json')['videos'].values()
             for e in v['expressions'].values()]
    text_encoder = make_tiny_text_encoder(texts, str(tmp_path / 'tiny_roberta'))
    pred_dir = str(tmp_path / 'pred')
    config = tmp_path / 'config.py'
    config.write_text(
        f"_base_ = ['{CONFIG}']\n"
        f"data_root = '{root}'\n"
        f"model = dict(text_encoder=dict(model_path='{text_encoder}'))\n"
        "train_dataloader = dict(dataset=dict(data_root=data_root))\n"
        "test_dataloader = dict(dataset=dict(data_root=data_root))\n"
        "test_evaluator = [\n"
        "    dict(type='LongRVOSMetric', meta_file=data_root + 'valid/meta_expressions.json',\n"
        "         annotations_dir=data_root + 'valid/Annotations'),\n"
        f"    dict(type='RefYTVOSSubmissionMetric', output_dir='{pred_dir}', zip_name='long_rvos_valid_pred.zip',\n"
        "         keep_pngs=True, meta_file=data_root + 'valid/meta_expressions.json')]\n")
    env = dict(os.environ, OMP_NUM_THREADS='1')
    work_dir = str(tmp_path / 'train')
    train = subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir', work_dir, '--cfg-options',
                            *schedule_overrides(MAX_ITERS), 'default_hooks.logger.interval=1'],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = train.stdout + train.stderr
    assert train.returncode == 0, out[-4000:]
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out and 'loss_dice' in out
    checkpoint = osp.join(work_dir, f'iter_{MAX_ITERS}.pth')
    assert osp.isfile(checkpoint)
    test_dir = str(tmp_path / 'test')
    test = subprocess.run([sys.executable, 'tools/test.py', str(config), checkpoint, '--work-dir', test_dir],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    metrics = read_metrics(test_dir)
    for table in ('static', 'dynamic', 'hybrid', 'overall'):
        for name in ('J', 'F', 'J&F', 'tIoU', 'vIoU'):
            value = metrics[f'long_rvos/{table}/{name}']
            assert 0.0 <= value <= 1.0, (table, name, metrics)
    # the PNGs written in the official layout score the same with the offline evaluator
    summary, rows = evaluate_long_rvos_predictions(osp.join(pred_dir, 'Annotations'),
                                                   root + 'valid/meta_expressions.json', root + 'valid/Annotations')
    assert all(r['prediction'] == 'scored' and r['num_frames'] == NUM_FRAMES for r in rows)
    for table, values in summary.items():
        for name, value in values.items():
            assert math.isclose(metrics[f'long_rvos/{table}/{name}'], value, abs_tol=1e-9), (table, name)
