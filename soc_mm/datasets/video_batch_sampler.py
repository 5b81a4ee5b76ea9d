"""Which samples show the same clip (``clip_key``), and the batch sampler that puts them in one batch."""
from typing import Hashable, Iterator, List, Mapping, Optional

from torch.utils.data import BatchSampler, Sampler

from soc_mm.registry import DATA_SAMPLERS


def clip_key(info: Mapping) -> Optional[Hashable]:
    """The identity of the clip a sample shows, from its data info or packed metainfo.

    ``info['clip_key']`` when the dataset sets one; otherwise ``(video_id, frame_ids,
    valid_frame_idx, flip)`` when the sample has a ``video_id`` and ``frame_ids`` (every RVOS
    dataset of soc_mm: the expressions of one clip are separate samples with the same frames);
    None (unknown: the sample is its own clip) otherwise. Samples with equal keys get equal model
    inputs when the test pipeline is deterministic (no random transforms), which is what lets
    ``RVOSVideoBatchSampler`` batch them and SOC's video inference run their text-independent
    stages once.
    """
    if info.get('clip_key') is not None:
        return ('clip_key', info['clip_key'])
    if info.get('video_id') is None or info.get('frame_ids') is None:
        return None
    valid = info.get('valid_frame_idx')
    return (info.get('dataset'), info['video_id'], tuple(info['frame_ids']),
            None if valid is None else tuple(int(i) for i in valid), bool(info.get('flip', False)))


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
