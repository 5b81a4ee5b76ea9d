"""soc_mm installed like an OpenMMLab package, used as a user of another project would.

The wheel is built from a copy of the sources (``pip wheel . --no-deps --no-build-isolation``) and installed
into a fresh virtual environment that reuses the installed stack (torch, mmcv with ops, ...: the running
interpreter's site-packages on its path through a ``.pth`` file, whose own ``.pth`` files, such as the
editable install of this checkout, are not run) without resolving dependencies. From a temporary directory,
that environment then: loads every config by name (``_base_`` files and ``custom_imports`` resolved in the
installed package), inherits one through MMEngine's ``soc_mm::`` syntax, generates a synthetic dataset and a
tiny text encoder, and runs ``mim train soc_mm`` (a few iterations of the tiny config), ``mim test soc_mm``
on its checkpoint, ``RVOSInferencer`` (by config name, with that checkpoint) on a generated clip and
``mim search soc_mm`` (every model of the metafiles listed).
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile

import pytest
import yaml

from conftest import REPO_ROOT
import soc_mm

#: what setup.py and MANIFEST.in need to build the package (a wheel is built from a copy of these)
SOURCES = ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml', 'requirements', 'soc_mm', 'configs', 'tools')
MIM_SUFFIXES = ('.py', '.sh', '.yml', '.md')
MAX_ITERS = 2


def run(cmd, cwd, env, timeout=300):
    """Run ``cmd``; its combined output, or a failure showing the command and the end of its output."""
    result = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f'{" ".join(map(str, cmd))} exited {result.returncode}:\n{result.stdout[-6000:]}'
    return result.stdout


def mim_files():
    """Paths (relative to the checkout) the package must carry in soc_mm/.mim."""
    files = ['model-index.yml']
    for top in ('configs', 'tools'):
        for dirpath, dirnames, filenames in os.walk(osp.join(REPO_ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            files += [osp.relpath(osp.join(dirpath, f), REPO_ROOT).replace(os.sep, '/') for f in filenames
                      if f.endswith(MIM_SUFFIXES)]
    return sorted(files)


def metafile_model_names():
    with open(osp.join(REPO_ROOT, 'model-index.yml'), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    names = []
    for rel in index['Import']:
        with open(osp.join(REPO_ROOT, rel), encoding='utf-8') as f:
            names += [m['Name'] for m in yaml.safe_load(f)['Models']]
    return names


# Runs in the fresh environment: every config by name, the MMEngine syntax, the data for mim train.
CHECK_SCRIPT = textwrap.dedent('''
    import json, os.path as osp, sys
    from mmengine.config import Config
    expected_configs = json.loads(sys.argv[1])
    import soc_mm
    from soc_mm.utils import config_paths
    out = dict(module=soc_mm.__file__, config_dir=config_paths.get_config_dir(), configs=soc_mm.list_configs())
    assert out['configs'] == expected_configs, (out['configs'], expected_configs)
    from mmengine.registry import DefaultScope
    from soc_mm.registry import MODELS
    loaded = {}
    for name in out['configs']:
        cfg = soc_mm.get_config(name)  # _base_ resolved, custom_imports (soc_mm) imported
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            registered = MODELS.get(cfg.model.type) is not None
        loaded[name] = [cfg.filename, registered, cfg.default_scope, cfg.custom_imports['imports']]
    out['loaded'] = loaded
    out['imported'] = sys.modules['soc_mm'].__file__
    with open('child.py', 'w') as f:
        f.write("_base_ = ['soc_mm::soc/soc_tiny_synthetic.py']\\nmodel = dict(num_queries=3)\\n")
    try:
        Config.fromfile('child.py')
        out['mmengine_before'] = 'loaded'
    except AssertionError as err:
        out['mmengine_before'] = str(err)
    config_paths.enable_mmengine_package_syntax()
    child = Config.fromfile('child.py')
    out['mmengine_after'] = [child.model.type, child.model.num_queries, child.model.voc.num_queries]
    from mmengine.hub import get_config
    out['hub'] = get_config('soc_mm::soc/soc_swin-b_refcoco-joint_8xb1-30e_refytvos.py').model.backbone.arch
    # the tiny config's data (its comment's commands, through the functions its tools call)
    from soc_mm.datasets import synthetic
    from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder, read_expressions
    root = 'data/synthetic_refytvos'
    synthetic.generate_ref_youtube_vos(root, num_train=2, num_valid=1, num_frames=4, size=(96, 96), seed=0)
    make_tiny_text_encoder(read_expressions([root]), root + '/tiny_roberta')
    print('RESULT ' + json.dumps(out))
''')


# Runs in the fresh environment: the inferencer by config name, on a 4-frame array, two expressions.
INFERENCER_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import soc_mm.apis.rvos_inferencer as module
    from soc_mm.apis import RVOSInferencer
    inferencer = RVOSInferencer('soc/soc_tiny_synthetic.py', weights=sys.argv[1], device='cpu', show_progress=False)
    frames = (np.random.RandomState(0).rand(4, 48, 64, 3) * 255).astype(np.uint8)
    result = inferencer(frames, ['the red circle', 'the blue square'], return_datasamples=True, out_dir='infer',
                        video_name='clip')
    pngs = sum(len(files) for _, _, files in os.walk('infer/preds/Annotations'))
    print('RESULT ' + json.dumps(dict(module=module.__file__, num_predictions=len(result['predictions']),
                                      mask_shape=list(result['predictions'][0].pred_masks.shape), pngs=pngs,
                                      files=sorted(os.listdir('infer')))))
''')


@pytest.mark.timeout(900)
def test_wheel_installs_and_runs_from_another_directory(tmp_path):
    src, dist, venv, work = (tmp_path / d for d in ('src', 'dist', 'venv', 'run'))
    for name in SOURCES:
        source = osp.join(REPO_ROOT, name)
        if osp.isdir(source):
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(source, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(OMP_NUM_THREADS='1', PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INDEX='1', PYTHONNOUSERSITE='1')

    # the sdist carries what setup.py reads and copies (MANIFEST.in)
    dist.mkdir()
    sdist = run([sys.executable, '-c', 'from setuptools import build_meta; print(build_meta.build_sdist("../dist"))'],
                src, env).strip().splitlines()[-1]
    with tarfile.open(dist / sdist) as tar:
        members = {m.name.split('/', 1)[1] for m in tar.getmembers() if '/' in m.name}
    expected = set(mim_files()) | {'setup.py', 'README.md', 'requirements/runtime.txt', 'requirements/tests.txt'}
    assert expected <= members, sorted(expected - members)

    # the wheel carries configs/, tools/ and model-index.yml in soc_mm/.mim
    run([sys.executable, '-m', 'pip', 'wheel', '.', '--no-deps', '--no-build-isolation', '-w', str(dist)], src, env)
    wheel = next(dist.glob('soc_mm-*.whl'))
    with zipfile.ZipFile(wheel) as zf:
        mim = sorted(n[len('soc_mm/.mim/'):] for n in zf.namelist() if n.startswith('soc_mm/.mim/'))
    assert mim == mim_files()

    # a fresh environment on top of the installed stack; the wheel installed without dependencies
    run([getattr(sys, '_base_executable', sys.executable), '-m', 'venv', '--without-pip', str(venv)], tmp_path, env)
    python = str(venv / 'bin' / 'python')
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], tmp_path, env).strip()
    with open(osp.join(site, '_stack.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    run([python, '-m', 'pip', 'install', '--no-deps', str(wheel)], tmp_path, env)
    package = osp.join(site, 'soc_mm')

    # every config by name from another directory, MMEngine's soc_mm:: syntax, the tiny config's data
    work.mkdir()
    out = run([python, '-c', CHECK_SCRIPT, json.dumps(soc_mm.list_configs())], work, env)
    result = json.loads(out.split('RESULT ', 1)[1].splitlines()[0])
    assert result['module'] == result['imported'] == osp.join(package, '__init__.py')  # not this checkout
    assert result['config_dir'] == osp.join(package, '.mim', 'configs')
    assert len(result['loaded']) == len(soc_mm.list_configs()) > 20
    for name, (filename, registered, scope, imports) in result['loaded'].items():
        assert filename == osp.join(package, '.mim', 'configs', name)
        assert registered and scope == 'soc_mm', name  # the model type is a registered soc_mm model
        assert imports == ['soc_mm'], name
    assert result['mmengine_before'] == 'mmengine does not support to load soc_mm config.'
    assert result['mmengine_after'] == ['SOC', 3, 5]  # inherited, then overridden
    assert result['hub'] == 'base'

    # mim train / test / search soc_mm
    out = run([python, '-m', 'mim', 'train', 'soc_mm', 'soc_tiny_synthetic.py', '--gpus', '0', '--work-dir', 'work',
               '--cfg-options', f'train_cfg.max_iters={MAX_ITERS}', f'train_cfg.val_interval={MAX_ITERS}',
               f'default_hooks.checkpoint.interval={MAX_ITERS}', 'default_hooks.logger.interval=1'], work, env)
    assert f'Training command is {python} {osp.join(package, ".mim", "tools", "train.py")} ' in out
    assert 'soc_mm/.mim/configs/soc/soc_tiny_synthetic.py --launcher none --work-dir work' in out
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out and 'Training finished successfully' in out
    checkpoint = work / 'work' / f'iter_{MAX_ITERS}.pth'
    assert checkpoint.is_file()
    out = run([python, '-m', 'mim', 'test', 'soc_mm', 'soc/soc_tiny_synthetic.py', '--checkpoint', str(checkpoint),
               '--work-dir', 'work_test'], work, env)
    assert f'Testing command is {python} {osp.join(package, ".mim", "tools", "test.py")} ' in out
    assert 'Iter(test)' in out and 'rvos/J&F' in out and 'Testing finished successfully' in out
    # RVOSInferencer of the installed package on a generated clip, with the trained tiny model
    out = run([python, '-c', INFERENCER_SCRIPT, str(checkpoint)], work, env)
    result = json.loads(out.split('RESULT ', 1)[1].splitlines()[0])
    assert result['module'] == osp.join(package, 'apis', 'rvos_inferencer.py')
    assert result['num_predictions'] == 2 and result['mask_shape'] == [4, 48, 64]
    assert result['pngs'] == 8 and result['files'] == ['preds', 'vis']
    out = run([python, '-m', 'mim', 'search', 'soc_mm'], work, env)
    listed = [line.split('config id: ', 1)[1].strip() for line in out.splitlines() if line.startswith('config id: ')]
    assert listed == metafile_model_names()
