"""Compatibility shims for the pinned stack, applied once on ``import soc_mm``.

``soc_mm/__init__.py`` is the only caller of :func:`apply_all` and calls it before importing any
submodule; Python runs the package ``__init__`` first whichever ``soc_mm.*`` module is imported
(e.g. ``import soc_mm.models.backbones.video_swin``), so modules that import ``mmaction.models``
rely on it instead of applying the shims again.

All work-arounds for third-party packages live here, each with its reason:

* mmaction2 1.2.0 (PyPI wheel) ships without ``mmaction/models/localizers/drn/``
  although ``mmaction.models.localizers`` imports it, so ``import mmaction.models``
  fails. We register an empty stand-in module whose ``DRN`` raises when used.
* With ``transformers`` installed, mmaction imports its multimodal (VindLU) code,
  which needs ``timm`` (-> torchvision -> CUDA torch) and an API that transformers 5
  removed. SOC needs none of it: we switch it off (``WITH_MULTIMODAL = False``).

Neither shim imports torchvision or timm.
"""
import importlib.util
import os.path as osp
import sys
import types

_DRN_MODULES = ('mmaction.models.localizers.drn', 'mmaction.models.localizers.drn.drn')


class _MissingDRN:
    """Stand-in for mmaction's DRN localizer, which the 1.2.0 wheel lacks."""

    def __init__(self, *args, **kwargs):
        raise ImportError('mmaction2 1.2.0 wheel does not ship DRN '
                          '(mmaction/models/localizers/drn); it is unavailable.')


class MMActionImportOrderError(ImportError):
    """``mmaction.models`` was imported before ``soc_mm`` and failed (the mmaction2 1.2.0 wheel), and
    importing it again with the stand-in did not recover."""


def _failed_earlier() -> bool:
    """Whether an earlier ``import mmaction.models`` started and failed: Python removes the failed package
    from ``sys.modules`` but keeps the submodules it had finished (e.g. ``mmaction.models.backbones``)."""
    return 'mmaction.models' not in sys.modules and any(
        name.startswith('mmaction.models.') for name in list(sys.modules))


def patch_mmaction() -> None:
    """Make ``import mmaction.models`` work with the mmaction2 1.2.0 wheel.

    When ``mmaction.models`` was imported (and failed) before ``soc_mm`` — by the user's code, a config's
    ``custom_imports`` listing it first, or MMEngine's registry, which swallows the error — the stand-in is
    installed and ``mmaction.models`` imported again at once; if that still fails, a
    :class:`MMActionImportOrderError` names the cause (the wheel lacks
    ``mmaction/models/localizers/drn``) and the fix (import ``soc_mm`` first). An ``import mmaction.models``
    that runs before ``soc_mm`` is imported at all cannot be helped from here: it fails with mmaction's own
    ``No module named 'mmaction.models.localizers.drn'``.
    """
    if 'mmaction.models' in sys.modules:
        return
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return  # mmaction2 not installed: nothing to patch
    failed_earlier = _failed_earlier()
    import mmaction.utils.dependency as mmaction_dependency
    mmaction_dependency.WITH_MULTIMODAL = False
    pkg_dir = list(spec.submodule_search_locations)[0]
    if osp.isdir(osp.join(pkg_dir, 'models', 'localizers', 'drn')):
        return  # a complete mmaction2 install (e.g. from source)
    for name in _DRN_MODULES:
        if name not in sys.modules:
            module = types.ModuleType(name, 'Stand-in: DRN is missing from the mmaction2 wheel.')
            module.DRN = _MissingDRN
            module.__path__ = []  # a package, so that ``.drn.drn`` resolves
            sys.modules[name] = module
    if failed_earlier:
        try:
            importlib.import_module('mmaction.models')
        except Exception as err:  # noqa: BLE001 - any failure here has the same cause and fix
            raise MMActionImportOrderError(
                'mmaction.models was imported before soc_mm and failed: the mmaction2 1.2.0 wheel does not '
                'ship mmaction/models/localizers/drn, which mmaction.models imports. soc_mm installs a '
                'stand-in for it when it is imported first, but the failed import left mmaction half '
                f'imported ({type(err).__name__}: {err}). Fix: import soc_mm before anything that imports '
                "mmaction (or list 'soc_mm' first in a config's custom_imports), or install mmaction2 from "
                'source (which has the drn module).') from err


def apply_all() -> None:
    """Apply every shim of this module (idempotent)."""
    patch_mmaction()
