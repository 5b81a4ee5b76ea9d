"""The configs of soc_mm by name, wherever the package is: an installed wheel or a source checkout.

An install that is not editable (``pip install .``, a built wheel) carries ``configs/``, ``tools/`` and
``model-index.yml`` in ``soc_mm/.mim/``: ``setup.py`` copies them there at build time, the layout of
OpenMMLab packages (mmdet, mmseg) that MIM (``mim train soc_mm CONFIG``) and MMEngine read. A source
checkout (an editable install, or the checkout on ``PYTHONPATH``) has them beside the package.

Names are relative to the configs folder, as in the metafiles and in MMEngine's ``package::`` syntax::

    >>> import soc_mm
    >>> cfg = soc_mm.get_config('soc/soc_swin-t_refytvos.py')          # _base_ files resolved
    >>> cfg = soc_mm.get_config('soc_mm::soc/soc_swin-t_refytvos.py')  # the same config
    >>> soc_mm.get_config_path('soc/soc_swin-t_refytvos')              # '.py' may be left out
    '.../soc_mm/.mim/configs/soc/soc_swin-t_refytvos.py'

MMEngine 0.10.7 itself resolves ``package::`` names only for the packages of its own table
(``mmengine.config.utils.MODULE2PACKAGE``: mmdet, mmseg, ...); :func:`enable_mmengine_package_syntax`
adds ``soc_mm`` to it, so that a config can inherit ours with ``_base_ = ['soc_mm::soc/...']``
(README, "Install as a package").
"""
import difflib
import os
import os.path as osp
from typing import Dict, List, Optional

from mmengine.config import Config

from .cli import merge_cfg_options

#: the prefix of MMEngine's external-config syntax for this package
PACKAGE_PREFIX = 'soc_mm::'

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))  # .../soc_mm


def get_package_root() -> str:
    """The folder that holds ``configs/``, ``tools/`` and ``model-index.yml``.

    ``soc_mm/.mim`` of an installed package (preferred when present), else the source checkout the
    package was imported from (the folder with ``setup.py`` and ``configs/soc``).

    Raises:
        FileNotFoundError: neither exists (e.g. a wheel built without setup.py's MIM step).
    """
    mim_root = osp.join(_PACKAGE_DIR, '.mim')
    if osp.isdir(osp.join(mim_root, 'configs')):
        return mim_root
    checkout = osp.dirname(_PACKAGE_DIR)
    if osp.isfile(osp.join(checkout, 'setup.py')) and osp.isdir(osp.join(checkout, 'configs', 'soc')):
        return checkout
    raise FileNotFoundError(
        f'soc_mm at {_PACKAGE_DIR} carries no configs: expected {mim_root}/configs (written by setup.py '
        f'when a wheel is built: `pip install .` or `pip wheel .`) or {checkout}/configs (a source checkout)')


def get_config_dir() -> str:
    """The ``configs`` folder of the package (see :func:`get_package_root`)."""
    return osp.join(get_package_root(), 'configs')


def list_configs(include_bases: bool = False) -> List[str]:
    """Every config as a name for :func:`get_config` (``'soc/soc_swin-t_refytvos.py'``), sorted.

    Args:
        include_bases: also list the files of ``_base_`` folders (partial configs).
    """
    root = get_config_dir()
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
        rel_dir = osp.relpath(dirpath, root)
        if not include_bases and '_base_' in rel_dir.split(osp.sep):
            continue
        for filename in filenames:
            if filename.endswith('.py'):
                names.append(osp.normpath(osp.join(rel_dir, filename)).replace(osp.sep, '/'))
    return sorted(names)


def _normalise(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f'a config name must be a non-empty string such as "soc/soc_swin-t_refytvos.py", '
                        f'got {name!r}')
    if name.startswith(PACKAGE_PREFIX):
        name = name[len(PACKAGE_PREFIX):]
    elif '::' in name:
        raise ValueError(f'{name!r} names the configs of package {name.partition("::")[0]!r}; '
                         f'soc_mm resolves only its own ({PACKAGE_PREFIX}...)')
    if osp.isabs(name):
        raise ValueError(f'{name!r} is a path: get_config takes a name relative to the configs folder '
                         '(e.g. "soc/soc_swin-t_refytvos.py"); load a file with mmengine Config.fromfile')
    name = name.replace('\\', '/')
    if name.startswith('configs/'):  # as the metafiles write it
        name = name[len('configs/'):]
    if not name.endswith('.py'):
        name += '.py'
    return name


def get_config_path(name: str) -> str:
    """Absolute path of the config ``name`` (``'soc/soc_swin-t_refytvos.py'``; accepted as well:
    a ``soc_mm::`` prefix, a ``configs/`` prefix, no ``.py`` suffix).

    Raises:
        FileNotFoundError: no such config; the message names the folder searched and the closest names.
    """
    rel = _normalise(name)
    root = get_config_dir()
    path = osp.normpath(osp.join(root, rel))
    if not path.startswith(osp.normpath(root) + osp.sep):
        raise ValueError(f'{name!r} leaves the configs folder {root}')
    if not osp.isfile(path):
        close = difflib.get_close_matches(rel, list_configs(include_bases=True), n=3, cutoff=0.5)
        hint = f'; closest: {", ".join(close)}' if close else ''
        raise FileNotFoundError(f'no config {rel!r} in {root}{hint}')
    return path


def get_config(name: str, cfg_options: Optional[Dict] = None) -> Config:
    """The config ``name`` (see :func:`get_config_path`) loaded with MMEngine, its ``_base_`` files
    resolved inside the package and its ``custom_imports`` (``soc_mm``) imported.

    Args:
        name: e.g. ``'soc/soc_swin-t_refytvos.py'`` or ``'soc_mm::soc_plus_plus/socpp_swin-t_8xb1-30e_mevis.py'``.
        cfg_options: ``{key: value}`` overrides (dotted keys, as ``--cfg-options``), each checked to
            replace a setting of the same type (``soc_mm.utils.cli.merge_cfg_options``).
    """
    cfg = Config.fromfile(get_config_path(name))
    merge_cfg_options(cfg, cfg_options)
    return cfg


def enable_mmengine_package_syntax() -> None:
    """Let MMEngine resolve ``soc_mm::`` names (``_base_ = ['soc_mm::soc/soc_swin-t_refytvos.py']`` in any
    config, ``mmengine.hub.get_config('soc_mm::soc/soc_swin-t_refytvos.py')``) in this process.

    MMEngine 0.10.7 accepts a ``package::`` name only for the packages listed in
    ``mmengine.config.utils.MODULE2PACKAGE``; this adds ``soc_mm`` (module and distribution name) to it,
    nothing else. It needs an install that is not editable: MMEngine finds the configs in
    ``<site-packages>/soc_mm/.mim/configs`` (an editable install has no such folder). Idempotent;
    importing soc_mm does not call it.
    """
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault('soc_mm', 'soc_mm')
