"""A minimal registered model and dataset for launcher/checkpoint tests."""
import torch
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel

from soc_mm.registry import DATASETS, MODELS


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    """y = w x + b, trained with an L2 loss."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, targets=None, mode='tensor', **kwargs):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        pred = self.linear(inputs.float())
        if mode == 'loss':
            targets = torch.stack(targets) if isinstance(targets, list) else targets
            return dict(loss=((pred.squeeze(-1) - targets.float()) ** 2).mean())
        return pred


@DATASETS.register_module(force=True)
class ToyRegressionDataset(BaseDataset):
    """Deterministic samples of y = sum(x)."""

    def __init__(self, num_samples=16, **kwargs):
        self.num_samples = num_samples
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        gen = torch.Generator().manual_seed(0)
        xs = torch.randn(self.num_samples, 4, generator=gen)
        return [dict(inputs=x, targets=x.sum()) for x in xs]
