"""The batch sampler that puts the samples showing the same clip (``soc_mm.structures.clip_key``) in one
batch."""
from typing import Hashable, Iterator, List

from torch.utils.data import BatchSampler, Sampler

from soc_mm.registry import DATA_SAMPLERS
from soc_mm.structures.batch_metainfo import clip_key


@DATA_SAMPLERS.register_module()
class RVOSVideoBatchSampler(BatchSampler):
    """Group consecutive indices whose samples show the same clip (``clip_key``).

    Ref-YouTube-VOS / Ref-DAVIS test sets hold one sample per expression, the expressions of a
    video next to each other. Batched together, ``SOC.predict`` (``VideoInference.predict_batch``)
    recognises the identical clips by the same ``clip_key`` of their metainfo and runs the video
    backbone once for all of them (``test_cfg.share_clips``). Use it as
    ``test_dataloader.batch_sampler = dict(type='RVOSVideoBatchSampler')`` (mmengine passes the
    sampler and ``batch_size``).

    Args:
        sampler (Sampler): index sampler (e.g. ``DefaultSampler(shuffle=False)``); its ``dataset``
            gives the metadata. With several ranks, ``DefaultSampler`` interleaves indices, so a
            video's expressions are split over ranks (results stay correct, less is shared).
        batch_size (int): ignored placeholder (mmengine passes the dataloader's ``batch_size``).
        max_expressions (int): at most this many samples per batch (bounds the memory of the
            stacked clips); a longer group is cut into several batches.
        drop_last (bool): must be False (every expression is predicted).
    """

    def __init__(self, sampler: Sampler, batch_size: int = 1, max_expressions: int = 8,
                 drop_last: bool = False) -> None:
        if drop_last:
            raise ValueError('RVOSVideoBatchSampler: drop_last=True would skip expressions')
        if not isinstance(max_expressions, int) or max_expressions < 1:
            raise ValueError(f'RVOSVideoBatchSampler: max_expressions must be >= 1, got {max_expressions!r}')
        dataset = getattr(sampler, 'dataset', None)
        if dataset is None or not hasattr(dataset, 'get_data_info'):
            raise ValueError('RVOSVideoBatchSampler: the sampler must expose a dataset with get_data_info '
                             '(e.g. mmengine DefaultSampler)')
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = batch_size
        self.max_expressions = max_expressions
        self.drop_last = False

    def _key(self, index: int) -> Hashable:
        key = clip_key(self.dataset.get_data_info(index))
        return ('index', index) if key is None else key

    def __iter__(self) -> Iterator[List[int]]:
        batch, key = [], None
        for index in self.sampler:
            k = self._key(index)
            if batch and (k != key or len(batch) == self.max_expressions):
                yield batch
                batch = []
            batch.append(index)
            key = k
        if batch:
            yield batch

    def __len__(self) -> int:
        return sum(1 for _ in self.__iter__())
