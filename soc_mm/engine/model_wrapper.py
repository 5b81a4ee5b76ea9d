"""DDP wrapper that also works on CPU (gloo) with MMEngine 0.10.7."""
import torch
from mmengine.model import MMDistributedDataParallel

from soc_mm.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class RVOSDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that drops ``device_ids`` on CPU.

    MMEngine's runner always passes ``device_ids=[local_rank]``; torch's DDP
    rejects device ids for CPU modules, so CPU (gloo) runs need ``None``.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available() or next(module.parameters()).device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
