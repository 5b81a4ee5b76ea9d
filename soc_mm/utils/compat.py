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


def patch_mmaction() -> None:
    """Make ``import mmaction.models`` work with the mmaction2 1.2.0 wheel."""
    if 'mmaction.models' in sys.modules:
        return
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return  # mmaction2 not installed: nothing to patch
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


def apply_all() -> None:
    """Apply every shim of this module (idempotent)."""
    patch_mmaction()
