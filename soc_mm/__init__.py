"""soc_mm: SOC (NeurIPS 2023) referring video object segmentation for OpenMMLab.

Importing the package (directly or via ``custom_imports=dict(imports=['soc_mm'])``)
applies the stack shims (``soc_mm.utils.compat``), adds MMEngine's checkpoint types to
torch's ``weights_only`` allow-list (``soc_mm.utils.checkpoint.register_safe_globals``:
additive; MMEngine's checkpoint loaders are left as they are) and registers every module
in the ``soc_mm`` registries. ``soc_mm.get_config('soc/soc_swin-t_refytvos.py')`` loads a config of the
package by name, from a source checkout or an installed wheel (``soc_mm.utils.config_paths``).
"""
from .utils import compat as _compat

_compat.apply_all()

from .utils.checkpoint import register_safe_globals  # noqa: E402

register_safe_globals()

from . import datasets, engine, evaluation, models, structures, visualization  # noqa: E402,F401
from .utils.config_paths import get_config, get_config_path, list_configs  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'get_config', 'get_config_path', 'list_configs']
