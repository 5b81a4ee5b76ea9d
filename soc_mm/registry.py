"""``soc_mm`` registries: children of MMEngine's root registries (scope ``soc_mm``).

Configs with ``default_scope='soc_mm'`` build our modules by plain type name and
still reach ``mmdet.*``, ``mmseg.*``, ``mmaction.*`` and ``mmengine`` modules by
scoped type (e.g. ``type='mmaction.SwinTransformer3D'``).
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['soc_mm.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['soc_mm.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['soc_mm.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['soc_mm.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['soc_mm.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['soc_mm.datasets.transforms'])
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['soc_mm.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['soc_mm.engine'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               locations=['soc_mm.models'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['soc_mm.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['soc_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      locations=['soc_mm.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            locations=['soc_mm.engine'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['soc_mm.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['soc_mm.evaluation'])
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, locations=['soc_mm.models'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['soc_mm.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, locations=['soc_mm.visualization'])
# no log processor of our own: the child only lets `log_processor` configs build without a scope warning
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, locations=['soc_mm.engine'])


def register_all_modules(init_default_scope: bool = True) -> None:
    """Fill the registries (``import soc_mm`` imports every module) and, optionally, make ``soc_mm``
    the default scope."""
    from mmengine.registry import DefaultScope

    import soc_mm  # noqa: F401  (the package import registers every module)
    if init_default_scope:
        if DefaultScope.get_current_instance() is None or \
                not DefaultScope.check_instance_created('soc_mm'):
            DefaultScope.get_instance('soc_mm', scope_name='soc_mm')
