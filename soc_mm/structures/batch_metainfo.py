"""What the model reads from a batch of ``RVOSDataSample``: the clips' shape, the metainfo of the data
samples, and which samples show the same clip (``clip_key``).

The data side (datasets, the video batch sampler) writes these fields, the model (``SOC``, video
inference) and the tools read them; both import this module, so neither imports the other. Each reader
checks what it reads and names the sample and the field when something is wrong.
"""
from typing import Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor


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


def check_batch(inputs: Tensor, batch_data_samples: Sequence) -> None:
    """``inputs`` must be clips [B, T, 3, H, W] with one data sample per clip."""
    if inputs.dim() != 5:
        raise ValueError(f'SOC expects inputs [B, T, 3, H, W], got {tuple(inputs.shape)}')
    if len(batch_data_samples) != inputs.shape[0]:
        raise ValueError(f'{len(batch_data_samples)} data samples for a batch of {inputs.shape[0]} clips')


def get_texts(batch_data_samples: Sequence) -> List[str]:
    """Referring expressions (metainfo ``expression``)."""
    texts = []
    for b, sample in enumerate(batch_data_samples):
        if 'expression' not in sample:
            raise ValueError(f'sample {b}: metainfo expression (referring text) is missing')
        texts.append(sample.expression)
    return texts


def get_img_shapes(batch_data_samples: Sequence, pad_hw: Sequence[int]) -> List[Tuple[int, int]]:
    """Unpadded (h, w) of every sample (metainfo ``img_shape``), within the padded size ``pad_hw``."""
    shapes = []
    for b, sample in enumerate(batch_data_samples):
        if 'img_shape' not in sample:
            raise ValueError(f'sample {b}: metainfo img_shape (unpadded h, w) is missing')
        h, w = (int(v) for v in sample.img_shape[:2])
        if h > pad_hw[0] or w > pad_hw[1]:
            raise ValueError(f'sample {b}: img_shape {(h, w)} exceeds the padded input {tuple(pad_hw)}')
        shapes.append((h, w))
    return shapes


def get_frame_index(batch_data_samples: Sequence, num_frames: int,
                    device: Union[str, torch.device] = 'cpu') -> Optional[Tensor]:
    """Indices into the ``(b t)`` frame batch of the frames kept after the backbone
    (``valid_frame_idx`` metainfo, A2D: the annotated frame).

    Returns None when every sample keeps all frames; otherwise int64 ``[B * T_out]`` with
    ``b * T + t`` (official ``valid_indices``).
    """
    per_sample = [s.metainfo.get('valid_frame_idx', None) for s in batch_data_samples]
    if all(idx is None for idx in per_sample):
        return None
    index = []
    for b, idx in enumerate(per_sample):
        idx = list(range(num_frames)) if idx is None else [int(i) for i in idx]
        if not idx or any(i < 0 or i >= num_frames for i in idx):
            raise ValueError(f'sample {b}: valid_frame_idx {per_sample[b]} must be non-empty '
                             f'clip indices in [0, {num_frames})')
        index.append([b * num_frames + i for i in idx])
    if len({len(i) for i in index}) != 1:
        raise ValueError('all samples of a batch need the same number of valid_frame_idx, '
                         f'got {[len(i) for i in index]}')
    return torch.tensor(index, dtype=torch.long, device=device).flatten()


def padding_masks(img_shapes: Sequence[Tuple[int, int]], pad_hw: Sequence[int], frames_per_video: int,
                  device: Union[str, torch.device]) -> Tensor:
    """bool ``[(B*T), Hp, Wp]``, True on padded pixels (bottom/right)."""
    masks = torch.ones(len(img_shapes), *pad_hw, dtype=torch.bool, device=device)
    for b, (h, w) in enumerate(img_shapes):
        masks[b, :h, :w] = False
    return masks.repeat_interleave(frames_per_video, dim=0)


def img_shapes_tensor(batch_data_samples: Sequence, device: Union[str, torch.device]) -> Tensor:
    """int64 ``[B, 2]``: unpadded (h, w) of every sample (what the dynamic mask head scales by)."""
    for b, sample in enumerate(batch_data_samples):
        if 'img_shape' not in sample:
            raise ValueError(f'sample {b}: metainfo img_shape (unpadded h, w) is missing')
    return torch.tensor([[int(v) for v in s.img_shape[:2]] for s in batch_data_samples],
                        dtype=torch.long, device=device)
