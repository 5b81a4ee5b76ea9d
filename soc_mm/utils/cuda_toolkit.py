"""Find a CUDA toolkit whose ``nvcc`` fits torch, to compile mmcv's CUDA ops (``tools/analysis_tools/gpu_check.py
cuda-home``).

mmcv's CUDA ops are compiled by the ``nvcc`` of ``CUDA_HOME``, whose CUDA major version must equal torch's
(``torch.utils.cpp_extension`` refuses otherwise). A system toolkit is taken when it fits ($CUDA_HOME,
$CUDA_PATH, nvcc on PATH, /usr/local/cuda*). Otherwise NVIDIA's compiler wheels of torch's CUDA version
in the running environment are used (CUDA 13: ``cuda-toolkit[nvcc,cccl]``, which lays out
``site-packages/nvidia/cu13`` as a CUDA_HOME; CUDA 12: ``nvidia-cuda-nvcc-cu12`` and friends, one folder
per wheel, gathered into ``<prefix>/cuda-home`` with links), pip-installed first when asked.

Standard library and torch only, nothing of ``soc_mm``: ``gpu_check.py cuda-home`` loads this file by its
path before mmcv is built and ``soc_mm`` installed (importing the ``soc_mm`` package needs both).
"""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from typing import List, Optional, Sequence, Tuple


class CudaToolkitError(RuntimeError):
    """No CUDA toolkit fits torch; the message says what to install."""


def nvcc_release(nvcc: str) -> Optional[str]:
    """``'13.0'`` from ``nvcc --version``; None when it does not run."""
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+)\.(\d+)', out)
    return f'{match[1]}.{match[2]}' if match else None


def system_cuda_homes() -> List[Tuple[str, str]]:
    """Candidate system toolkits, ``(path, where it was found)``, in the order torch looks."""
    homes = [(os.environ[var], f'${var}') for var in ('CUDA_HOME', 'CUDA_PATH') if os.environ.get(var)]
    nvcc = shutil.which('nvcc')
    if nvcc:
        homes.append((osp.dirname(osp.dirname(osp.realpath(nvcc))), 'nvcc on PATH'))
    homes += [(path, 'standard location') for path in sorted(glob.glob('/usr/local/cuda*'), reverse=True)]
    seen, unique = set(), []
    for path, where in homes:
        if osp.realpath(path) not in seen:
            seen.add(osp.realpath(path))
            unique.append((path, where))
    return unique


def pip_toolkit_requirements(torch_cuda: str, torch_requires: Sequence[str]) -> List[str]:
    """NVIDIA's pip wheels with ``nvcc`` (and the headers mmcv needs) of torch's CUDA version.

    Args:
        torch_cuda (str): ``torch.version.cuda``, e.g. ``'13.0'``.
        torch_requires (list[str]): torch's requirements (``importlib.metadata.requires('torch')``);
            an exact ``cuda-toolkit==X`` pin there is followed.
    """
    major, minor = torch_cuda.split('.')[:2]
    if int(major) >= 13:
        version = f'{major}.{minor}.*'
        for req in torch_requires:
            match = re.match(r'cuda-toolkit(\[[^\]]*\])?\s*==\s*([0-9][^;,\s]*)', req.strip())
            if match:
                version = match[2]
        return [f'cuda-toolkit[nvcc,cccl]=={version}']
    return [f'nvidia-cuda-nvcc-cu{major}=={major}.{minor}.*', f'nvidia-cuda-cccl-cu{major}=={major}.{minor}.*',
            f'nvidia-cuda-runtime-cu{major}=={major}.{minor}.*']


def _link(src: str, dst: str) -> None:
    if not osp.lexists(dst):
        os.symlink(src, dst)


def _ensure_unversioned_cudart(lib_dir: str) -> None:
    """``libcudart.so`` -> ``libcudart.so.<major>`` (the wheels ship only the versioned name; the
    extension links with ``-lcudart``)."""
    versioned = sorted(glob.glob(osp.join(lib_dir, 'libcudart.so.*')))
    target = osp.join(lib_dir, 'libcudart.so')
    if versioned and not osp.lexists(target):
        os.symlink(osp.basename(versioned[0]), target)


def pip_cuda_home(site_packages: str, major: int, merged_dir: str) -> Optional[str]:
    """A CUDA_HOME made of NVIDIA's pip wheels under ``site_packages/nvidia``; None when no wheel
    ``nvcc`` is there.

    CUDA >= 13 wheels share one tree (``nvidia/cu13/{bin,include,lib,nvvm}``): that tree is the home.
    CUDA 12 wheels have one folder each (``nvidia/cuda_nvcc``, ``nvidia/cuda_runtime``, ``nvidia/cublas``,
    ...): ``merged_dir`` gets ``bin/`` (``nvcc`` and ``nvcc.profile`` copied, so that the profile's
    ``$(_HERE_)/..`` is ``merged_dir``; the other tools linked), ``nvvm`` and the union of the wheels'
    ``include/`` and ``lib/`` entries, linked.
    """
    root = osp.join(site_packages, 'nvidia')
    unified = osp.join(root, f'cu{major}')
    if osp.isfile(osp.join(unified, 'bin', 'nvcc')):
        _ensure_unversioned_cudart(osp.join(unified, 'lib'))
        return unified
    nvcc_pkg = osp.join(root, 'cuda_nvcc')
    if not osp.isfile(osp.join(nvcc_pkg, 'bin', 'nvcc')):
        return None
    if osp.isdir(merged_dir):
        shutil.rmtree(merged_dir)
    for sub in ('bin', 'include', 'lib'):
        os.makedirs(osp.join(merged_dir, sub))
    for name in sorted(os.listdir(osp.join(nvcc_pkg, 'bin'))):
        src = osp.join(nvcc_pkg, 'bin', name)
        if name in ('nvcc', 'nvcc.profile'):
            shutil.copy2(src, osp.join(merged_dir, 'bin', name))
        else:
            _link(src, osp.join(merged_dir, 'bin', name))
    if osp.isdir(osp.join(nvcc_pkg, 'nvvm')):
        _link(osp.join(nvcc_pkg, 'nvvm'), osp.join(merged_dir, 'nvvm'))
    # the runtime's and the compiler's headers first (cuda_runtime.h, crt/), then every other wheel's
    packages = ['cuda_runtime', 'cuda_nvcc'] + sorted(set(os.listdir(root)) - {'cuda_runtime', 'cuda_nvcc'})
    for package in packages:
        for sub in ('include', 'lib'):
            folder = osp.join(root, package, sub)
            if osp.isdir(folder):
                for name in sorted(os.listdir(folder)):
                    _link(osp.join(folder, name), osp.join(merged_dir, sub, name))
    _ensure_unversioned_cudart(osp.join(merged_dir, 'lib'))
    return merged_dir


def find_cuda_home(torch_cuda: Optional[str], install: bool = False, constraints: Sequence[str] = (),
                   site_packages: Optional[str] = None, merged_dir: Optional[str] = None) -> Tuple[str, str, str]:
    """A CUDA_HOME whose ``nvcc`` has the CUDA major version of torch (``torch.version.cuda``), as
    ``torch.utils.cpp_extension`` requires to compile mmcv's ops: a system toolkit (``system_cuda_homes``)
    when one fits, else NVIDIA's pip wheels in this environment (``pip_cuda_home``), pip-installed first
    with ``install`` (with the pip ``constraints`` files). Prints what it tries and rejects.

    Args:
        torch_cuda (str | None): torch's CUDA version, e.g. ``'13.0'``; None (a CPU build) is an error.
        install (bool): pip-install the wheels (``pip_toolkit_requirements``) when nothing fits.
        constraints (list[str]): pip constraint files of the install.
        site_packages (str, optional): where the wheels are (default: this environment's purelib).
        merged_dir (str, optional): the CUDA 12 home gathered from the wheels (default ``<prefix>/cuda-home``).

    Returns:
        (home, nvcc release such as ``'13.0'``, ``'system'`` or ``'pip'``).

    Raises:
        CudaToolkitError: no fitting toolkit (the message says what to install).
    """
    import torch
    if not torch_cuda:
        raise CudaToolkitError(f'torch {torch.__version__} is a CPU build: no CUDA version for nvcc to match')
    major = int(torch_cuda.split('.')[0])
    print(f'torch {torch.__version__} was built with CUDA {torch_cuda}: nvcc must be CUDA {major}.x '
          f'(torch.utils.cpp_extension refuses another major version)')
    rejected = []
    for path, where in system_cuda_homes():
        nvcc = osp.join(path, 'bin', 'nvcc')
        release = nvcc_release(nvcc) if osp.isfile(nvcc) else None
        if release is None:
            rejected.append(f'{path} ({where}): no working bin/nvcc')
        elif not osp.isfile(osp.join(path, 'include', 'cuda_runtime.h')):
            rejected.append(f'{path} ({where}): nvcc {release} but no include/cuda_runtime.h (a wrapper script?)')
        elif int(release.split('.')[0]) != major:
            rejected.append(f'{path} ({where}): nvcc {release}, not CUDA {major}')
        else:
            print(f'system toolkit {path} ({where}): nvcc {release}')
            return path, release, 'system'
    print('no system CUDA toolkit fits' + (':\n  ' + '\n  '.join(rejected) if rejected else
                                           ' (no nvcc on PATH, no $CUDA_HOME, nothing under /usr/local/cuda*)'))
    site = site_packages or sysconfig.get_paths()['purelib']
    merged = merged_dir or osp.join(sys.prefix, 'cuda-home')
    home = pip_cuda_home(site, major, merged)
    if home is None:
        requirements = pip_toolkit_requirements(torch_cuda, metadata.requires('torch') or [])
        if not install:
            raise CudaToolkitError(f'no nvcc for CUDA {major}: install a CUDA {torch_cuda} toolkit and set CUDA_HOME, '
                                   f'or pip install {" ".join(requirements)} (--install does)')
        cmd = [sys.executable, '-m', 'pip', 'install', '-q']
        for constraint in constraints:
            cmd += ['-c', constraint]
        cmd += requirements
        print(f'installing NVIDIA\'s compiler wheels: {" ".join(cmd)}', flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise CudaToolkitError(f'pip could not install {" ".join(requirements)}: install a CUDA {torch_cuda} '
                                   'toolkit (e.g. NVIDIA\'s cuda-toolkit package) and set CUDA_HOME')
        home = pip_cuda_home(site, major, merged)
        if home is None:
            raise CudaToolkitError(f'{" ".join(requirements)} installed, but no nvcc under {site}/nvidia')
    release = nvcc_release(osp.join(home, 'bin', 'nvcc'))
    if release is None or int(release.split('.')[0]) != major:
        raise CudaToolkitError(f'{home}/bin/nvcc does not run or is not CUDA {major} (nvcc --version: {release})')
    print(f'pip toolkit {home}: nvcc {release}')
    return home, release, 'pip'
