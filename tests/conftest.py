"""Shared test helpers. Test files live in folders that mirror the package (tests/test_models/ for
soc_mm/models, ...); pytest puts this folder on the import path (it holds the root conftest.py and no
__init__.py), so tests import these helpers and the helper modules beside it (toy_rvos_modules,
malicious_checkpoints, checkpoint_fault_injection, soc_reference_helpers) by name; a test folder's own
helper modules (e.g. test_datasets/synthetic_datasets.py, test_evaluation/rvos_metric_samples.py) are
imported by name from the tests beside them."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS_DIR = osp.dirname(osp.abspath(__file__))
FIXTURE_ROOT = osp.join(TESTS_DIR, 'data', 'soc_reference')
#: the tiny random RoBERTa (and its tokenizer) of the golden fixtures
TEXT_ENCODER_DIR = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')
#: the golden-fixture variants (tests/data/soc_reference/README.md) and the one most tests use
FIXTURE_VARIANTS = ['ytvos_b2_t3_nc1_w0', 'ytvos_b2_t3_nc1_w2', 'ytvos_b2_t3_nc65_w0', 'a2d_b2_t3_nc1_w0',
                    'ytvos_b1_t10_nc1_w2']
MAIN_VARIANT = 'ytvos_b2_t3_nc1_w0'

_FIXTURE_CACHE = {}


def load_fixture(variant, name):
    """A file of a golden-fixture variant (``variant=None``: of the fixture root), loaded once per session."""
    key = (variant, name)
    if key not in _FIXTURE_CACHE:
        path = osp.join(FIXTURE_ROOT, variant, name) if variant else osp.join(FIXTURE_ROOT, name)
        if name.endswith('.json'):
            with open(path) as f:
                _FIXTURE_CACHE[key] = json.load(f)
        else:
            _FIXTURE_CACHE[key] = torch.load(path, weights_only=True)
    return _FIXTURE_CACHE[key]


TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')


def assert_same_weights(checkpoint, other):
    """Two checkpoints hold the same weights, every tensor bit for bit (a demo run twice on one machine)."""
    state, state_again = (torch.load(path, map_location='cpu', weights_only=True)['state_dict']
                          for path in (checkpoint, other))
    assert len(state) > 100 and state.keys() == state_again.keys()
    differing = [k for k in state if not torch.equal(state[k], state_again[k])]
    assert not differing, f'same seed, same machine, different weights: {differing[:5]}'


def tools_train_args(config=TINY_CONFIG, **kwargs):
    """tools/train.py's parsed arguments (its defaults, ``kwargs`` replacing them), for calling
    ``soc_mm.utils.launch.config_for_training`` as the tool does."""
    import argparse
    defaults = dict(config=config, work_dir=None, amp=False, auto_scale_lr=False, resume=None, cfg_options=None,
                    launcher='none', local_rank=0)
    return argparse.Namespace(**dict(defaults, **kwargs))


def tools_test_args(checkpoint, config=TINY_CONFIG, **kwargs):
    """tools/test.py's parsed arguments (its defaults, ``kwargs`` replacing them), for calling
    ``soc_mm.utils.launch.config_for_testing`` as the tool does."""
    import argparse
    defaults = dict(config=config, checkpoint=checkpoint, work_dir=None, out=None, show_dir=None, non_strict=False,
                    cfg_options=None, bf16=False, reference_kernels=False, launcher='none', local_rank=0)
    return argparse.Namespace(**dict(defaults, **kwargs))


@pytest.fixture
def repo_root():
    return REPO_ROOT


def subprocess_env(extra_pythonpath=()):
    """Environment for child processes: tests dir on PYTHONPATH, 1 thread each."""
    env = dict(os.environ)
    paths = [TESTS_DIR, REPO_ROOT, *extra_pythonpath]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def run_python(code, *args, timeout=300, check=True):
    """``python -c code args...`` in a child process (``subprocess_env``), its output captured as text. With
    ``check`` a non-zero exit fails the test with the end of its stderr; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='session')
def official_sd():
    """The official state dict of the golden fixtures (official keys; tests/data/soc_reference/common)."""
    return torch.load(osp.join(FIXTURE_ROOT, 'common', 'official_state_dict.pt'))


@pytest.fixture(scope='session')
def front_sd(official_sd):
    """``official_sd`` converted to our keys (``soc_mm.official.checkpoint.convert_official_state_dict``)."""
    from soc_mm.official.checkpoint import convert_official_state_dict
    return convert_official_state_dict(official_sd)
