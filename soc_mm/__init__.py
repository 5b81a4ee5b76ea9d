"""soc_mm: SOC (NeurIPS 2023) referring video object segmentation for OpenMMLab.

Importing the package (directly or via ``custom_imports=dict(imports=['soc_mm'])``)
applies the stack shims (``soc_mm.utils.compat``), enables safe checkpoint loading
(``soc_mm.utils.checkpoint``) and registers every module in the ``soc_mm`` registries.
"""
from .utils import compat as _compat

_compat.apply_all()

from .utils.checkpoint import install_safe_checkpoint_loading  # noqa: E402

install_safe_checkpoint_loading()

from . import datasets, engine, evaluation, models, structures, visualization  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
