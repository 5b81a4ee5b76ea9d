from soc_mm.models.layers.fast_kernels import disable_fast_kernels, enable_fast_kernels
from .inference import (StreamClip, count_video_frames, inference_rvos, init_model, iter_video_frames, prepare_clip,
                        stream_rvos)
from .rvos_inferencer import RVOSInferencer

__all__ = ['init_model', 'inference_rvos', 'stream_rvos', 'StreamClip', 'count_video_frames', 'iter_video_frames',
           'prepare_clip', 'enable_fast_kernels', 'disable_fast_kernels', 'RVOSInferencer']
