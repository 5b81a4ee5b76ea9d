"""tools/analysis_tools/gpu_check.sh and its helper gpu_check.py: what can be checked without a GPU.

The script itself (bash syntax, --help, the commands of --dry-run with TORCH_CUDA_ARCH_LIST and the torch
index from a given compute capability / driver CUDA version, option errors), the helper's library parts
(``soc_mm.utils.cuda_toolkit``: nvcc selection, pip toolkit layout; ``soc_mm.testing.gpu_check``: loss
checks), its ``cuda-home`` without the ``soc_mm`` package and its training step on the CPU, and the clear
failure of compare_with_reference.py --device cuda where CUDA is missing.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT, subprocess_env
from soc_mm.testing.gpu_check import CheckFailed, check_losses
from soc_mm.utils import cuda_toolkit

SCRIPT = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'gpu_check.sh')
HELPER = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'gpu_check.py')


def run_script(*args, env=None, timeout=60):
    return subprocess.run([shutil.which('bash'), SCRIPT, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout,
                          env=env or dict(os.environ))


def write_fake_nvcc(home, release):
    """``home/bin/nvcc`` printing ``nvcc --version`` of CUDA ``release``, and the runtime header."""
    os.makedirs(osp.join(home, 'bin'))
    os.makedirs(osp.join(home, 'include'))
    nvcc = osp.join(home, 'bin', 'nvcc')
    with open(nvcc, 'w') as f:
        f.write(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.99"\n')
    os.chmod(nvcc, 0o755)
    open(osp.join(home, 'include', 'cuda_runtime.h'), 'w').close()
    return nvcc


# ---------------------------------------------------------------------------------- the script
def test_script_is_valid_bash():
    proc = subprocess.run(['bash', '-n', SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_help_lists_the_steps_and_options():
    proc = run_script('--help')
    assert proc.returncode == 0, proc.stderr
    for step in ('1a venv', '1b torch', '1c mmengine', '1d nvcc', '1e mmcv', '1f requirements',
                 '2  golden', '3  train', '4  bench', 'summary'):
        assert step in proc.stdout, step
    for option in ('--venv', '--skip-build', '--dry-run', '--compute-cap', '--cuda-version', '--steps',
                   'TORCH_INDEX_URL'):
        assert option in proc.stdout, option


def test_dry_run_prints_the_commands_with_the_arch_list_and_the_torch_index():
    had_venv = osp.exists(osp.join(REPO_ROOT, '.venv-gpu'))
    env = dict(os.environ)
    env.pop('TORCH_INDEX_URL', None)
    proc = run_script('--dry-run', '--compute-cap', '9.0', '--cuda-version', '12.4', env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'TORCH_CUDA_ARCH_LIST="9.0"' in out and 'MMCV_WITH_OPS=1 FORCE_CUDA=1' in out
    assert '--no-build-isolation' in out and 'MAX_JOBS=' in out
    # the newest PyTorch CUDA index the driver runs, with the pinned torch and its local label
    assert 'torch index: https://download.pytorch.org/whl/cu124' in out
    assert '--index-url https://download.pytorch.org/whl/cu124' in out and '"torch==2.13.0+cu124"' in out
    assert 'cu121' in out and 'cu126' not in out  # older indexes as fallbacks, never a newer CUDA
    assert '-c requirements/constraints.txt' in out
    assert '.venv-gpu/bin/python -m pip install' in out
    for command in ('compare_with_reference.py tests/data/soc_reference --device cuda',
                    'gpu_check.py train --steps 20 --amp-dtype float16', 'benchmark.py', '--device cuda',
                    'gpu_check.py bench'):
        assert command in out, command
    assert had_venv or not osp.exists(osp.join(REPO_ROOT, '.venv-gpu'))  # nothing ran


def test_dry_run_follows_the_driver_and_the_overrides(tmp_path):
    env = dict(os.environ)
    env.pop('TORCH_INDEX_URL', None)
    out = run_script('--dry-run', '--compute-cap', '8.6', '--cuda-version', '13.0', '--venv', str(tmp_path / 'v'),
                     '--steps', 'build', env=env).stdout
    assert 'torch index: https://download.pytorch.org/whl/cu130' in out and 'TORCH_CUDA_ARCH_LIST="8.6"' in out
    assert f'{tmp_path}/v/bin/python -m pip' in out
    assert 'gpu_check.py stack' not in out  # only the selected steps
    env['TORCH_INDEX_URL'] = 'https://example.invalid/whl/custom'
    out = run_script('--dry-run', '--compute-cap', '9.0', '--cuda-version', '13.0', env=env).stdout
    assert 'torch index: https://example.invalid/whl/custom' in out and '"torch==2.13.0"' in out
    # a driver older than every CUDA build: no index, said so
    env.pop('TORCH_INDEX_URL')
    out = run_script('--dry-run', '--compute-cap', '9.0', '--cuda-version', '11.4', env=env).stdout
    assert 'torch index: NONE: driver CUDA 11.4 is older than every known index' in out


@pytest.mark.parametrize('args, message', [
    (['--bogus'], 'unknown argument: --bogus'),
    (['--steps', 'build,nap'], "unknown step 'nap'"),
    (['--compute-cap', 'sm90'], '--compute-cap must look like 9.0'),
    (['--cuda-version', '12'], '--cuda-version must look like 12.4'),
    (['--train-steps', '3'], '--train-steps must be a number >= 10'),
    (['--venv'], '--venv needs a value'),
])
def test_bad_options_are_refused_naming_them(args, message):
    proc = run_script(*args, '--dry-run')
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_real_run_without_a_driver_stops_at_once(tmp_path):
    bin_dir = tmp_path / 'bin'  # the tools the script needs, and no nvidia-smi even on a GPU machine
    bin_dir.mkdir()
    for tool in ('dirname', 'grep', 'sed', 'tr', 'sort', 'paste', 'env', 'nproc', 'date', 'mkdir'):
        os.symlink(shutil.which(tool), bin_dir / tool)
    proc = run_script('--work-dir', str(tmp_path / 'w'), env=dict(os.environ, PATH=str(bin_dir)))
    assert proc.returncode == 1 and 'nvidia-smi not found' in proc.stderr
    assert not osp.exists(tmp_path / 'w')


# ---------------------------------------------------------------------------------- cuda-home
def test_pip_toolkit_requirements_follow_torch_cuda():
    torch_requires = ['filelock', 'cuda-toolkit[cublas,cudart]==13.0.3; platform_system == "Linux"']
    assert cuda_toolkit.pip_toolkit_requirements('13.0', torch_requires) == ['cuda-toolkit[nvcc,cccl]==13.0.3']
    assert cuda_toolkit.pip_toolkit_requirements('13.2', []) == ['cuda-toolkit[nvcc,cccl]==13.2.*']
    assert cuda_toolkit.pip_toolkit_requirements('12.8', ['nvidia-cuda-runtime-cu12==12.8.90']) == [
        'nvidia-cuda-nvcc-cu12==12.8.*', 'nvidia-cuda-cccl-cu12==12.8.*', 'nvidia-cuda-runtime-cu12==12.8.*']


def test_pip_cuda_home_uses_the_cuda13_tree_and_adds_the_cudart_link(tmp_path):
    home = tmp_path / 'site' / 'nvidia' / 'cu13'
    (home / 'bin').mkdir(parents=True)
    (home / 'lib').mkdir()
    (home / 'bin' / 'nvcc').write_text('')
    (home / 'lib' / 'libcudart.so.13').write_text('')
    assert cuda_toolkit.pip_cuda_home(str(tmp_path / 'site'), 13, str(tmp_path / 'merged')) == str(home)
    assert os.readlink(home / 'lib' / 'libcudart.so') == 'libcudart.so.13'
    assert not (tmp_path / 'merged').exists()
    assert cuda_toolkit.pip_cuda_home(str(tmp_path / 'empty'), 13, str(tmp_path / 'merged')) is None


def test_pip_cuda_home_gathers_the_cuda12_wheels(tmp_path):
    root = tmp_path / 'site' / 'nvidia'
    files = ['cuda_nvcc/bin/nvcc', 'cuda_nvcc/bin/nvcc.profile', 'cuda_nvcc/bin/ptxas', 'cuda_nvcc/nvvm/bin/cicc',
             'cuda_nvcc/include/crt/host_config.h', 'cuda_runtime/include/cuda_runtime.h',
             'cuda_runtime/lib/libcudart.so.12', 'cublas/include/cublas_v2.h', 'cublas/lib/libcublas.so.12']
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    merged = tmp_path / 'venv' / 'cuda-home'
    assert cuda_toolkit.pip_cuda_home(str(tmp_path / 'site'), 12, str(merged)) == str(merged)
    # nvcc and its profile copied (the profile's $(_HERE_)/.. is the merged home), the rest linked
    assert not (merged / 'bin' / 'nvcc').is_symlink() and (merged / 'bin' / 'nvcc').read_text() == 'cuda_nvcc/bin/nvcc'
    assert not (merged / 'bin' / 'nvcc.profile').is_symlink()
    assert (merged / 'bin' / 'ptxas').is_symlink() and (merged / 'nvvm' / 'bin' / 'cicc').is_file()
    for name in ('cuda_runtime.h', 'cublas_v2.h', 'crt/host_config.h'):
        assert (merged / 'include' / name).is_file(), name
    assert (merged / 'lib' / 'libcublas.so.12').is_file()
    assert os.readlink(merged / 'lib' / 'libcudart.so') == 'libcudart.so.12'


def test_cuda_home_takes_a_system_toolkit_of_torch_major_version(tmp_path, monkeypatch, capsys):
    write_fake_nvcc(str(tmp_path / 'cuda-12.4'), '12.4')
    write_fake_nvcc(str(tmp_path / 'cuda-13.0'), '13.0')
    wrapper = tmp_path / 'wrapper'  # an nvcc without the toolkit's headers beside it
    write_fake_nvcc(str(wrapper), '13.0')
    os.remove(wrapper / 'include' / 'cuda_runtime.h')
    monkeypatch.setattr(cuda_toolkit, 'system_cuda_homes', lambda: [
        (str(tmp_path / 'missing'), '$CUDA_HOME'), (str(tmp_path / 'cuda-12.4'), 'nvcc on PATH'),
        (str(wrapper), 'nvcc on PATH'), (str(tmp_path / 'cuda-13.0'), 'standard location')])
    assert cuda_toolkit.find_cuda_home('13.0') == (str(tmp_path / 'cuda-13.0'), '13.0', 'system')
    out = capsys.readouterr().out
    assert 'nvcc must be CUDA 13.x' in out and f'system toolkit {tmp_path / "cuda-13.0"} (standard location)' in out


def test_cuda_home_without_a_fitting_nvcc_names_what_to_install(tmp_path, monkeypatch):
    write_fake_nvcc(str(tmp_path / 'cuda-12.4'), '12.4')
    monkeypatch.setattr(cuda_toolkit, 'system_cuda_homes', lambda: [(str(tmp_path / 'cuda-12.4'), 'nvcc on PATH')])
    with pytest.raises(cuda_toolkit.CudaToolkitError,
                       match=r'no nvcc for CUDA 13.*pip install cuda-toolkit\[nvcc,cccl\]'):
        cuda_toolkit.find_cuda_home('13.0', site_packages=str(tmp_path / 'site'),
                                    merged_dir=str(tmp_path / 'venv' / 'cuda-home'))
    assert not (tmp_path / 'venv').exists()


def test_cuda_home_refuses_a_cpu_torch():
    with pytest.raises(cuda_toolkit.CudaToolkitError, match='CPU build'):
        cuda_toolkit.find_cuda_home(None)


def test_cuda_home_command_runs_without_the_soc_mm_package(tmp_path):
    """gpu_check.sh runs ``cuda-home`` before mmcv is built and soc_mm installed: the command must not
    import the soc_mm package (here a stand-in that fails on import shadows it)."""
    shadow = tmp_path / 'shadow' / 'soc_mm'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text("raise ImportError('the soc_mm package was imported')\n")
    env = subprocess_env()
    env['PYTHONPATH'] = os.pathsep.join([str(tmp_path / 'shadow'), env['PYTHONPATH']])
    proc = subprocess.run([sys.executable, HELPER, 'cuda-home'], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120, env=env)
    assert 'the soc_mm package was imported' not in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr
    assert 'torch ' in proc.stdout + proc.stderr
    if torch.version.cuda is None:
        assert proc.returncode == 1 and 'gpu_check.py cuda-home: FAILED: ' in proc.stderr and 'CPU build' in proc.stderr


# ---------------------------------------------------------------------------------- training check
def test_check_losses_wants_finite_falling_losses_of_every_step():
    falling = [(i + 1, 10.0 - 0.4 * i) for i in range(12)]
    first, last = check_losses(falling, 12)
    assert first == pytest.approx(9.2) and last == pytest.approx(6.4)
    with pytest.raises(CheckFailed, match='does not fall'):
        check_losses([(i + 1, 5.0 + 0.1 * i) for i in range(12)], 12)
    with pytest.raises(CheckFailed, match='non-finite'):
        check_losses(falling[:5] + [(6, float('nan'))] + falling[6:], 12)
    with pytest.raises(CheckFailed, match='iterations 1..12'):
        check_losses(falling[:-1], 12)


def test_train_runs_tools_train_and_checks_the_logged_losses(tmp_path):
    """The AMP step's plumbing on the CPU (fp32: MMEngine's AmpOptimWrapper needs a GPU): synthetic data,
    tiny text encoder, tools/train.py with per-iteration logging, the losses read back and checked."""
    proc = subprocess.run([sys.executable, HELPER, 'train',
                           '--amp-dtype', 'none', '--steps', '10', '--num-train', '4', '--work-dir', str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'RESULT steps=10 amp=none' in proc.stdout
    scalars = [json.loads(line) for line in open(next((tmp_path / 'train_none').glob('*/vis_data/scalars.json')))]
    assert [r['iter'] for r in scalars if 'loss' in r] == list(range(1, 11))


# ---------------------------------------------------------------------------------- golden tensors on CUDA
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message where CUDA is missing')
def test_compare_with_reference_on_cuda_fails_clearly_without_cuda():
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'compare_with_reference.py'),
                           osp.join(REPO_ROOT, 'tests', 'data', 'soc_reference'), '--device', 'cuda'],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 1
    assert '--device cuda: CUDA is not available here' in proc.stderr and 'Traceback' not in proc.stderr
    assert '==' not in proc.stdout  # failed before comparing anything
