"""The tiny SOC on synthetic ReVOS (configs/soc/soc_tiny_synthetic_revos.py) trained and tested as a user runs it:
the generator's data and a tiny text encoder, ``tools/train.py`` for a few iterations, ``tools/test.py`` on the
last checkpoint (RevosMetric's tables), and the PNGs it wrote scored offline to the same numbers. Checks the
plumbing (ReVOSDataset, LoadRLEMasks, the threshold inference with no-target expressions, RevosMetric), not
the accuracy."""
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
from soc_mm.evaluation.functional.revos import REVOS_METRICS, REVOS_TABLES, evaluate_revos_predictions
from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder

CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_revos.py')
MAX_ITERS = 4
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def test_config_is_the_tiny_soc_on_revos():
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py'))
    cfg = Config.fromfile(CONFIG)
    model, base = cfg.model.to_dict(), tiny.model.to_dict()
    assert model.pop('test_cfg') == dict(base.pop('test_cfg'), object_selection='threshold', score_thr=0.5,
                                         allow_no_target=True)
    assert model['text_encoder'].pop('model_path') == 'data/synthetic_revos/tiny_roberta'
    del base['text_encoder']['model_path']
    assert model == base  # otherwise the tiny SOC
    assert cfg.train_dataloader.dataset.type == cfg.test_dataloader.dataset.type == 'ReVOSDataset'
    assert (cfg.train_dataloader.dataset.split, cfg.test_dataloader.dataset.split) == ('train', 'valid')
    assert cfg.test_evaluator.type == 'RevosMetric'


def test_tiny_soc_trains_and_tests_on_revos(tmp_path):
    root = str(tmp_path / 'revos') + '/'
    synthetic.generate('revos', root, num_train=3, num_valid=2, num_frames=6, size=(48, 48), seed=0)
    texts = [e['exp'] for v in read_json(root + 'meta_expressions_train_.json')['videos'].values()
             for e in v['expressions'].values()]
    text_encoder = make_tiny_text_encoder(texts, str(tmp_path / 'tiny_roberta'))
    pred_dir = str(tmp_path / 'pred')
    paths = [f'train_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
             f'test_evaluator.meta_file={root}meta_expressions_valid_.json',
             f'test_evaluator.mask_dict_file={root}mask_dict.json',
             f'test_evaluator.foreground_file={root}mask_dict_foreground.json',
             f'test_evaluator.output_dir={pred_dir}', f'model.text_encoder.model_path={text_encoder}']
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
    out = test.stdout + test.stderr
    assert test.returncode == 0, out[-4000:]
    assert 'RevosMetric: expressions touched by the official rules' in out
    metrics = read_metrics(test_dir)
    for table in REVOS_TABLES:
        for key in REVOS_METRICS:
            assert 0.0 <= metrics[f'revos/{table}/{key}'] <= 100.0, metrics
    # the PNGs the metric wrote (0/255, nested video folders) score offline to the metric's numbers
    summary, rows = evaluate_revos_predictions(pred_dir, root + 'meta_expressions_valid_.json', root + 'mask_dict.json')
    assert summary['rule_counts']['missing_video'] == summary['rule_counts']['error_zero'] == 0
    assert len(rows) == sum(len(v['expressions']) for v in
                            read_json(root + 'meta_expressions_valid_.json')['videos'].values())
    for table in REVOS_TABLES:
        for key in REVOS_METRICS:
            assert summary[table][key] == pytest.approx(metrics[f'revos/{table}/{key}'], abs=1e-9)
