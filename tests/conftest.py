import os
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS_DIR = osp.dirname(osp.abspath(__file__))
FIXTURE_ROOT = osp.join(TESTS_DIR, 'data', 'soc_reference')

if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


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
