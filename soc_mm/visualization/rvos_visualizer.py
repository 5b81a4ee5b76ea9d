"""Drawing referring-segmentation results: masks over the frames of a clip, the expression on top."""
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import master_only
from mmengine.utils import mkdir_or_exist
from mmengine.visualization import Visualizer

from soc_mm.registry import VISUALIZERS
from soc_mm.structures.rvos_data_sample import referred_instance_ids

# distinct RGB colours, one per expression / object (tab10-like)
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv')


def _to_numpy_masks(masks, num_frames: int, name: str) -> np.ndarray:
    """bool [T, H, W] from a Tensor / array (a single [H, W] mask is broadcast over T)."""
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks).astype(bool)
    if masks.ndim == 2:
        masks = np.broadcast_to(masks, (num_frames, *masks.shape))
    if masks.ndim != 3 or masks.shape[0] != num_frames:
        raise ValueError(f'{name}: expected bool masks [T={num_frames}, H, W], got shape {masks.shape}')
    return masks


def resize_masks_nearest(masks: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """bool [T, h, w] -> bool [T, H, W] (nearest)."""
    if masks.shape[-2:] == tuple(size):
        return masks
    t = torch.from_numpy(np.ascontiguousarray(masks)).float()[None]
    return F.interpolate(t, size=tuple(size), mode='nearest')[0].numpy() > 0.5


#: containers ``write_video`` writes (H.264 / MPEG-4 streams)
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.mov')


def check_video_output_path(path: str) -> None:
    """Fail before any work when ``path`` cannot receive a video: wrong extension or not a writable place."""
    ext = osp.splitext(path)[1].lower()
    if ext not in VIDEO_EXTENSIONS:
        raise ValueError(f'output video {path!r}: unsupported extension {ext or "(none)"!r}; '
                         f'expected one of {", ".join(VIDEO_EXTENSIONS)}')
    if osp.isdir(path):
        raise ValueError(f'output video {path!r} is a directory; expected a file path')
    if osp.exists(path) and not osp.isfile(path):  # a FIFO would block the writer until a reader comes
        raise ValueError(f'output video {path!r} exists and is not a regular file (a FIFO, socket or device)')
    parent = osp.dirname(osp.abspath(path))
    existing = parent
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing) or not os.access(existing, os.W_OK):
        raise PermissionError(f'output video {path!r}: cannot create files under {existing!r}')


def write_video(path: str, frames: Iterable[np.ndarray], fps: float = 10.0) -> int:
    """Write RGB uint8 frames [H, W, 3] (any iterable, consumed lazily) to a video file with PyAV
    (H.264 when available, else MPEG-4). Returns the number of frames written."""
    import av
    check_video_output_path(path)
    mkdir_or_exist(osp.dirname(osp.abspath(path)))
    count = 0
    with av.open(path, mode='w') as container:
        stream = None
        for frame in frames:
            frame = np.asarray(frame)
            if stream is None:
                h, w = frame.shape[:2]
                h2, w2 = h - h % 2, w - w % 2  # yuv420p needs even sizes
                codec = 'libx264' if 'libx264' in av.codecs_available else 'mpeg4'
                stream = container.add_stream(codec, rate=max(1, int(round(fps))))
                stream.width, stream.height, stream.pix_fmt = w2, h2, 'yuv420p'
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h2, :w2]), format='rgb24')
            for packet in stream.encode(image):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError(f'write_video: no frames to write to {path}')
        for packet in stream.encode():
            container.mux(packet)
    return count


@VISUALIZERS.register_module()
class RVOSVisualizer(Visualizer):
    """mmengine ``Visualizer`` for referring video object segmentation.

    Draws, on every frame of a clip, one coloured mask per referring expression and the
    expressions (in the mask colours) at the top-left. ``add_datasample`` draws the ground truth
    (``ori_gt_masks`` or the referred ``gt_instances``) and/or the prediction (``pred_masks``) of an
    ``RVOSDataSample`` side by side, frames tiled left to right, and saves the picture (or a video
    when ``out_file`` ends with .mp4/.avi/...).

    Args:
        name (str): instance name. vis_backends, save_dir: see ``mmengine.visualization.Visualizer``.
        alpha (float): mask opacity.
        font_size (int): expression font size in pixels.
        max_frames (int): at most this many frames are tiled by ``add_datasample`` (evenly spaced).
    """

    def __init__(self, name: str = 'visualizer', image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None, save_dir: Optional[str] = None,
                 alpha: float = 0.5, font_size: int = 13, max_frames: int = 8) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        if not 0 <= alpha <= 1:
            raise ValueError(f'RVOSVisualizer: alpha must be in [0, 1], got {alpha}')
        self.alpha = alpha
        self.font_size = font_size
        self.max_frames = max_frames

    # ------------------------------------------------------------------ frames
    def draw_frame(self, frame: np.ndarray, masks: Sequence[Optional[np.ndarray]], texts: Sequence[str],
                   title: Optional[str] = None) -> np.ndarray:
        """One RGB frame [H, W, 3] with ``masks[i]`` (bool [H, W] or None) in colour ``i`` and the
        ``texts`` listed top-left in the same colours (``title`` first, in white). Returns RGB uint8."""
        if len(masks) != len(texts):
            raise ValueError(f'draw_frame: {len(masks)} masks for {len(texts)} expressions')
        self.set_image(frame)
        for i, mask in enumerate(masks):
            if mask is not None and mask.any():
                self.draw_binary_masks(mask[None], colors=[PALETTE[i % len(PALETTE)]], alphas=self.alpha)
        lines = ([(title, (255, 255, 255))] if title else []) + \
            [(text, PALETTE[i % len(PALETTE)]) for i, text in enumerate(texts)]
        size = max(6, min(self.font_size, frame.shape[0] // max(4, 2 * len(lines) + 1)))
        for k, (text, color) in enumerate(lines):
            self.draw_texts(text, np.array([2, 2 + k * (size + 4)]), colors=[color], font_sizes=size,
                            vertical_alignments='top',
                            bboxes=dict(facecolor='black', alpha=0.6, pad=0.5, edgecolor='none'))
        return self.get_image()

    def draw_clip(self, frames: Sequence[np.ndarray], masks: Sequence, texts: Sequence[str],
                  title: Optional[str] = None) -> List[np.ndarray]:
        """RGB frames [T] x [H, W, 3] + per-expression masks (each bool [T, H, W], resized nearest to
        the frames when needed, or None) -> painted RGB frames."""
        frames = [np.asarray(f) for f in frames]
        if not frames:
            raise ValueError('draw_clip: the clip has no frames')
        size = frames[0].shape[:2]
        masks = [None if m is None else resize_masks_nearest(_to_numpy_masks(m, len(frames), f'masks[{i}]'), size)
                 for i, m in enumerate(masks)]
        return [self.draw_frame(f, [None if m is None else m[t] for m in masks], texts, title)
                for t, f in enumerate(frames)]

    # ------------------------------------------------------------------ data samples
    @staticmethod
    def clip_frames(inputs: Union[torch.Tensor, np.ndarray], img_shape: Optional[Sequence[int]] = None,
                    bgr: bool = True) -> List[np.ndarray]:
        """Pipeline ``inputs`` uint8 [T, 3, h, w] (BGR) -> RGB frames [h, w, 3], cropped to ``img_shape``."""
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()
        inputs = np.asarray(inputs)
        if inputs.ndim != 4 or inputs.shape[1] != 3:
            raise ValueError(f'clip_frames: expected inputs [T, 3, h, w], got {inputs.shape}')
        if img_shape is not None:
            inputs = inputs[..., :int(img_shape[0]), :int(img_shape[1])]
        frames = inputs.transpose(0, 2, 3, 1)
        if bgr:
            frames = frames[..., ::-1]
        return [np.ascontiguousarray(f).astype(np.uint8) for f in frames]

    @staticmethod
    def _gt_masks(sample) -> Optional[np.ndarray]:
        if 'ori_gt_masks' in sample:
            return sample.ori_gt_masks
        if 'gt_instances' in sample and 'masks' in sample.gt_instances:
            masks = torch.as_tensor(np.asarray(sample.gt_instances.masks)).bool()  # [N, T, H, W]
            refs = referred_instance_ids(sample.metainfo) if 'ref_inst_idx' in sample.metainfo else [0]
            refs = [i for i in refs if i < len(masks)]
            # several referred objects (MeViS): their union; none: an empty mask
            return masks[refs].any(0) if refs else (torch.zeros_like(masks[0]) if len(masks) else None)
        return None

    def draw_datasample(self, frames: Sequence[np.ndarray], data_sample, draw_gt: bool = True,
                        draw_pred: bool = True) -> List[np.ndarray]:
        """Painted RGB frames of the evaluated frames (``valid_frame_idx``) of one sample; ground truth
        and prediction side by side when both are drawn and present."""
        meta = data_sample.metainfo
        valid = meta.get('valid_frame_idx')
        frames = [frames[i] for i in valid] if valid is not None else list(frames)
        text = meta.get('expression', '')
        panels = []
        gt = self._gt_masks(data_sample) if draw_gt else None
        if gt is not None:
            panels.append(self.draw_clip(frames, [gt], [text], title='GT'))
        if draw_pred and 'pred_masks' in data_sample:
            panels.append(self.draw_clip(frames, [data_sample.pred_masks], [text],
                                         title='Prediction' if gt is not None else None))
        if not panels:  # nothing to draw: the frames and the expression
            panels.append(self.draw_clip(frames, [None], [text]))
        return [np.concatenate(p, axis=1) for p in zip(*panels)]

    def tile(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Up to ``max_frames`` evenly spaced frames side by side (top to bottom when they are wide)."""
        idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), self.max_frames)).round().astype(int))
        picked = [frames[i] for i in idx]
        axis = 0 if picked[0].shape[1] > 2 * picked[0].shape[0] else 1
        return np.concatenate(picked, axis=axis)

    @master_only
    def add_datasample(self, name: str, image: Union[np.ndarray, Sequence[np.ndarray]], data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, step: int = 0, fps: float = 10.0) -> np.ndarray:
        """Draw one sample and show / save / log it.

        Args:
            name (str): image name for the backends.
            image: RGB frames of the clip (list of [H, W, 3] or array [T, H, W, 3]) at the size the
                masks are drawn at (masks are resized nearest to it).
            data_sample (RVOSDataSample): with ``pred_masks`` and/or ``ori_gt_masks`` / ``gt_instances``.
            out_file (str, optional): picture (frames tiled) or, for .mp4/.avi/..., a video.
        Returns:
            The tiled picture, RGB uint8.
        """
        frames = self.draw_datasample(list(image), data_sample, draw_gt, draw_pred) if data_sample is not None \
            else [np.asarray(f) for f in image]
        picture = self.tile(frames)
        if show:
            self.show(picture, win_name=name, wait_time=wait_time)
        if out_file is not None:
            if out_file.lower().endswith(VIDEO_SUFFIXES):
                write_video(out_file, frames, fps)
            else:
                mmcv.imwrite(picture[..., ::-1], out_file)
        else:
            self.add_image(name, picture, step)
        return picture
