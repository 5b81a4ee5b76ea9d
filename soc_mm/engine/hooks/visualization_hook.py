"""Paint predictions of video samples during validation / testing."""
import os.path as osp
import re
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.utils import mkdir_or_exist
from mmengine.visualization import Visualizer

from soc_mm.registry import HOOKS


@HOOKS.register_module()
class RVOSVisualizationHook(Hook):
    """Draw the predicted masks (and the ground truth when the sample has it) with the expression.

    mmdet's ``DetVisualizationHook`` reloads one image from ``img_path``; RVOS samples are clips,
    so this hook paints the clip the model saw (``data_batch['inputs']``, cropped to ``img_shape``)
    with the runner's visualizer (an ``RVOSVisualizer``).

    Validation: every ``interval``-th batch's first sample is sent to the vis backends.
    Test: every ``interval``-th batch (every batch with ``interval=1``) is drawn; with
    ``test_out_dir`` each sample is saved as ``<work_dir>/<timestamp>/<test_out_dir>/<video>_<exp>.jpg``
    (or ``.mp4`` with ``video=True``), else sent to the backends.

    Args:
        draw (bool): enable drawing (off by default; ``tools/test.py --show-dir`` switches it on).
        interval (int): draw every ``interval``-th batch.
        show (bool): show the pictures in a window.
        wait_time (float): seconds a shown picture stays.
        test_out_dir (str, optional): folder (relative to the run's log dir) for the test pictures.
        video (bool): save test samples as videos instead of tiled pictures.
    """
    priority = 'NORMAL'

    def __init__(self, draw: bool = False, interval: int = 50, show: bool = False, wait_time: float = 0.,
                 test_out_dir: Optional[str] = None, video: bool = False) -> None:
        if interval < 1:
            raise ValueError(f'RVOSVisualizationHook: interval must be >= 1, got {interval}')
        self.draw = draw
        self.interval = interval
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.video = video

    @staticmethod
    def _visualizer():
        vis = Visualizer.get_current_instance()
        if not hasattr(vis, 'clip_frames'):
            raise TypeError(f'RVOSVisualizationHook needs an RVOSVisualizer (config: visualizer = '
                            f"dict(type='RVOSVisualizer', ...)), got {type(vis).__name__}")
        return vis

    def _paint(self, vis, inputs, sample, name: str, out_file: Optional[str], step: int) -> None:
        frames = vis.clip_frames(inputs, sample.metainfo.get('img_shape'))
        vis.add_datasample(name, frames, sample, show=self.show, wait_time=self.wait_time,
                           out_file=out_file, step=step)

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence) -> None:
        if not self.draw or not self.every_n_inner_iters(batch_idx, self.interval):
            return
        vis = self._visualizer()
        sample = outputs[0]
        name = f"val_{sample.metainfo.get('video_id', batch_idx)}_{sample.metainfo.get('exp_id', '')}"
        self._paint(vis, data_batch['inputs'][0], sample, name, None, runner.iter)

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence) -> None:
        if not self.draw or not self.every_n_inner_iters(batch_idx, self.interval):
            return
        vis = self._visualizer()
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            mkdir_or_exist(out_dir)
        for inputs, sample in zip(data_batch['inputs'], outputs):
            meta = sample.metainfo
            name = re.sub(r'[^\w.-]+', '_', f"{meta.get('video_id', batch_idx)}_{meta.get('exp_id', '')}")
            out_file = None if out_dir is None else osp.join(out_dir, name + ('.mp4' if self.video else '.jpg'))
            self._paint(vis, inputs, sample, name, out_file, batch_idx)
