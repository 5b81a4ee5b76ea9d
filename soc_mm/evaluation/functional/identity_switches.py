"""Identity switches of a referring prediction over a long video: how often the predicted mask jumps from one
annotated object to another.

Long-RVOS scores one expression against its one object (J&F, tIoU, vIoU), which says how much of the object
was found but not whether the answer kept to one object: a prediction that alternates between the referred
object and a look-alike from one clip to the next loses vIoU like one that is half the time empty. With every
annotated object of the video at hand (the Long-RVOS ``Annotations/<video>/<obj_id>/`` folders), each frame's
prediction is given an identity and the changes are counted:

* **identity of a frame**: the annotated object that the predicted mask overlaps most (pixels in common),
  provided these pixels are at least ``min_cover`` (default half) of the predicted mask; otherwise none (an
  empty prediction, or one that is mostly background or spread over several objects);
* **identity switches** of an expression: the number of times the identity changes between consecutive
  frames that have one (frames without one are skipped: an object that leaves and comes back under the same
  identity is no switch; going from the referred object to a look-alike and back is two).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: a frame's prediction takes the identity of an object when at least this share of its pixels is on it
MIN_COVER = 0.5


def frame_identities(pred: np.ndarray, objects: np.ndarray, min_cover: float = MIN_COVER) -> np.ndarray:
    """The identity of the prediction on each frame.

    Args:
        pred (np.ndarray): bool ``[T, H, W]``, the predicted masks.
        objects (np.ndarray): bool ``[M, T, H, W]``, the masks of the video's M annotated objects (empty where
            an object is absent).
        min_cover (float): the share of the predicted pixels that must lie on the object, in (0, 1].

    Returns:
        np.ndarray: int64 ``[T]``, the index (in ``objects``) of each frame's identity, -1 for none.
    """
    pred = np.asarray(pred, bool)
    objects = np.asarray(objects, bool)
    if pred.ndim != 3 or objects.ndim != 4 or objects.shape[1:] != pred.shape:
        raise ValueError(f'frame_identities: pred must be [T, H, W] and objects [M, T, H, W] of the same frames, '
                         f'got {pred.shape} and {objects.shape}')
    if not 0 < min_cover <= 1:
        raise ValueError(f'frame_identities: min_cover must be in (0, 1], got {min_cover}')
    area = pred.reshape(pred.shape[0], -1).sum(1)  # [T]
    if objects.shape[0] == 0:
        return np.full(pred.shape[0], -1, np.int64)
    common = (objects & pred[None]).reshape(objects.shape[0], pred.shape[0], -1).sum(2)  # [M, T]
    best = common.argmax(0)
    covered = common[best, np.arange(pred.shape[0])]
    ok = (area > 0) & (covered >= min_cover * area)
    return np.where(ok, best, -1).astype(np.int64)


def identity_switch_frames(identities: Sequence[Optional[int]]) -> List[Tuple[int, int]]:
    """The identity switches as ``(before, after)`` frame indices: ``after`` has another identity than
    ``before``, the previous frame that has one (-1 or None: no identity, skipped)."""
    switches, previous = [], None
    for t, identity in enumerate(identities):
        if identity is None or identity < 0:
            continue
        if previous is not None and identity != identities[previous]:
            switches.append((previous, t))
        previous = t
    return switches


def count_identity_switches(identities: Sequence[Optional[int]]) -> int:
    """Changes of identity between consecutive frames that have one (-1 or None: no identity, skipped)."""
    return len(identity_switch_frames(identities))
