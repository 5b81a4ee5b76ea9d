"""Video-level inference on top of SOC's stages: the one schedule used by ``SOC.predict`` (the test
loop) and by ``soc_mm.apis.inference_rvos``.

The model (``soc_mm.models.detectors.soc``) holds the maths; this module decides what runs on what:

1. **split**: a video longer than ``clip_len`` frames is processed as consecutive clips of
   ``clip_len`` frames (``iter_clips``: along the time axis of a tensor, or over frames read lazily
   from a file by the API, so the memory does not grow with the video length);
2. **share**: per clip, the text-independent stages (``SOC.extract_feat``: backbone, neck, padding
   masks, positions) run once for every distinct clip, the text encoder once for all expressions,
   and the text-dependent stages (``SOC.forward_transformer``) and the head run batched over the
   (clip, expression) pairs, at most ``expressions_per_batch`` at a time, with the clip features
   repeated for the pairs;
3. **choose**: each clip picks its own referred query (or, with ``test_cfg.object_selection='threshold'``,
   its own set of objects: ``SOCHead.predict_by_feat``), as separate clips would; with
   ``test_cfg.link_clips`` the objects chosen in one clip are followed into the next one
   (``clip_linking.ClipLinker``, one per stream of clips);
4. **merge** (or stream): per sample, the clips' results (``InstanceData`` over frames) are
   concatenated over time (``predict_stream``), or handed out clip by clip (``iter_stream``: nothing
   is kept but the linker's few tensors per object, so memory does not grow with the video length).

Which samples of a test-loop batch show the same clip is known from the data side: equal
``clip_key`` of their metainfo (``soc_mm.structures.clip_key``: dataset, video,
frames, kept frames, flip); ``RVOSVideoBatchSampler`` puts them in one batch.
"""
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.structures import InstanceData
from torch import Tensor, nn

from soc_mm.structures.batch_metainfo import check_batch, clip_key, get_texts
from .clip_linking import ClipLinker
from .test_options import RVOSTestOptions

# (clips [G, T, 3, Hp, Wp], data samples [N], clip_index int64 [N]): one clip of G videos, N pairs
ClipBatch = Tuple[Tensor, Sequence, Tensor]


def iter_clips(frames: Union[Tensor, Iterable], clip_len: Optional[int]) -> Iterator:
    """Consecutive clips of at most ``clip_len`` frames.

    ``frames``: a tensor [G, T, ...] (split along T into views) or an iterable of frames (lists of
    at most ``clip_len`` frames, read lazily). ``clip_len`` None: everything in one clip.
    """
    if clip_len is not None and (isinstance(clip_len, bool) or not isinstance(clip_len, int) or clip_len < 1):
        raise ValueError(f'clip_len must be a positive number of frames or None, got {clip_len!r}')
    if isinstance(frames, Tensor):
        yield from ([frames] if clip_len is None else frames.split(clip_len, dim=1))
        return
    clip = []
    for frame in frames:
        clip.append(frame)
        if clip_len is not None and len(clip) == clip_len:
            yield clip
            clip = []
    if clip:
        yield clip


def group_clips(data_samples: Sequence) -> Tuple[List[int], Tensor]:
    """Samples with the same ``clip_key`` show the same clip.

    Returns the index of the first sample of each distinct clip and int64 ``clip_index`` [N] (the
    distinct clip of every sample). A sample without a key is its own clip.
    """
    first, clip_index, seen = [], [], {}
    for n, sample in enumerate(data_samples):
        key = clip_key(sample.metainfo)
        if key is None or key not in seen:
            first.append(n)
            if key is not None:
                seen[key] = len(first) - 1
            clip_index.append(len(first) - 1)
        else:
            clip_index.append(seen[key])
    return first, torch.tensor(clip_index, dtype=torch.long)


def expand_clip_feats(feats: Dict[str, List[Tensor]], clip_index: Tensor, num_frames: int) -> Dict:
    """``SOC.extract_feat`` output of G clips -> the same for N pairs: clip ``clip_index[n]``
    becomes batch entry n (frames stay batch-major ``(n t)``). Identity when ``clip_index`` is
    ``arange(G)``."""
    num_clips = feats['mlvl_feats'][0].shape[0] // num_frames
    if clip_index.numel() == num_clips and torch.equal(clip_index.cpu(), torch.arange(num_clips)):
        return feats
    device = feats['mlvl_feats'][0].device
    frame_index = (clip_index[:, None] * num_frames + torch.arange(num_frames, device=clip_index.device)).flatten()
    frame_index = frame_index.to(device)
    return {key: [x.index_select(0, frame_index) for x in value] for key, value in feats.items()}


def _pad_objects(value: Tensor, num_objects: int) -> Tensor:
    """Per-object field [T, k, ...] -> [T, num_objects, ...], the new slots empty (False, 0, -1)."""
    if value.shape[1] == num_objects:
        return value
    fill = False if value.dtype == torch.bool else (-1 if not value.is_floating_point() else 0)
    pad = value.new_full((value.shape[0], num_objects - value.shape[1], *value.shape[2:]), fill)
    return torch.cat([value, pad], dim=1)


def merge_clip_results(clip_results: Sequence[Sequence[InstanceData]]) -> List[InstanceData]:
    """Per-clip results (list over clips of N ``InstanceData`` over frames) -> N results over all
    frames (``InstanceData.cat`` in time order).

    Per-object fields (``object_*``, [T, k, ...]: the k objects a clip selected) may differ in k
    between clips (each clip selects its own objects; objects of different clips are not matched):
    they are padded to the largest k with empty slots (masks False, scores 0, query index -1).
    """
    if not clip_results:
        raise ValueError('no clip to merge: the video has zero frames')
    if len({len(results) for results in clip_results}) != 1:
        raise ValueError(f'clips disagree on the number of samples: {[len(r) for r in clip_results]}')
    merged = []
    for n in range(len(clip_results[0])):
        parts = [results[n] for results in clip_results]
        object_keys = [k for k in parts[0].keys() if k.startswith('object_')]
        if object_keys and len(parts) > 1:
            num_objects = max(part.get(k).shape[1] for part in parts for k in object_keys)
            padded = []
            for part in parts:
                part = part.clone()
                for key in object_keys:
                    setattr(part, key, _pad_objects(part.get(key), num_objects))
                padded.append(part)
            parts = padded
        merged.append(InstanceData.cat(parts))
    return merged


class VideoInference:
    """Run a SOC model on videos: split into clips, share the text-independent stages, merge.

    Args:
        model (nn.Module): a ``SOC`` (``extract_feat``, ``extract_text_feat``,
            ``forward_transformer``, ``bbox_head.predict``, ``test_options``).
        options (RVOSTestOptions, optional): the schedule options (``clip_len``,
            ``expressions_per_batch``, ``share_clips``, ``bf16``; see ``RVOSTestOptions``). Default:
            the model's ``test_options`` (the defaults for a model without).
        **changes: options replaced for this inference only (e.g. ``clip_len=8``), checked as in
            a config.

    The head reads its options (``object_selection``, ``score_thr``, ...) from ``options`` too (passed
    to ``bbox_head.predict`` on every call): concurrent inferences with different options share no
    mutable state, and the model's ``test_options`` are never changed.

    ``clip_len`` (None: whole videos) applies only when every sample keeps all frames (no
    ``valid_frame_idx``); ``share_clips`` False gives every sample of a test-loop batch its own
    clip; ``bf16`` runs the model under CPU ``torch.autocast`` with bfloat16 (CPUs with bf16 matrix
    units run it several times faster; see docs/speed.md, section bf16, for its effect on accuracy)
    and returns float32 results. ``link_clips`` follows the chosen objects from one clip of a stream
    to the next (``ClipLinker``; off: SOC's per-clip choice, the same outputs as before the option
    existed); ``presence_thr`` (read by the head) empties the masks of frames where a chosen object
    is absent.
    """

    def __init__(self, model: nn.Module, options: Optional[RVOSTestOptions] = None, **changes) -> None:
        if options is None:
            options = getattr(model, 'test_options', None) or RVOSTestOptions()
        if not isinstance(options, RVOSTestOptions):
            raise TypeError(f'VideoInference: options must be an RVOSTestOptions, got {type(options).__name__}')
        self.model = model
        self.options = options.replace(**changes) if changes else options

    # ------------------------------------------------------------------ entry points
    def predict_batch(self, inputs: Tensor, data_samples: Sequence, rescale: bool = True) -> List[InstanceData]:
        """A test-loop batch: inputs [B, T, 3, Hp, Wp], one clip per sample. Samples showing the
        same clip (``group_clips``) share its text-independent stages. Returns B results."""
        check_batch(inputs, data_samples)
        if self.options.share_clips:
            first, clip_index = group_clips(data_samples)
        else:
            first, clip_index = list(range(len(data_samples))), torch.arange(len(data_samples))
        clips = inputs if len(first) == len(data_samples) else inputs[first]
        return self.predict_clips(clips, data_samples, clip_index.to(inputs.device), rescale=rescale)

    def predict_clips(self, clips: Tensor, data_samples: Sequence, clip_index: Tensor,
                      rescale: bool = True) -> List[InstanceData]:
        """G whole videos [G, T, 3, Hp, Wp] and N samples (``clip_index`` [N]): split along time
        into clips of ``clip_len`` frames (none when a sample keeps only some frames), predict,
        merge. Returns N results over the T frames."""
        keeps_all = all(s.metainfo.get('valid_frame_idx') is None for s in data_samples)
        chunks = iter_clips(clips, self.options.clip_len if keeps_all else None)
        return self.predict_stream(((chunk, data_samples, clip_index) for chunk in chunks), rescale=rescale)

    def predict_stream(self, stream: Iterable[ClipBatch], rescale: bool = True,
                       results_device: Optional[Union[str, torch.device]] = None) -> List[InstanceData]:
        """Consecutive clips of the same videos and samples (e.g. read lazily from a video file) ->
        N results over all frames (``iter_stream``'s clips merged). ``results_device``: where each
        clip's results go before merging (e.g. 'cpu', so that GPU memory does not grow with the video
        length)."""
        return merge_clip_results(list(self.iter_stream(stream, rescale=rescale, results_device=results_device)))

    def iter_stream(self, stream: Iterable[ClipBatch], rescale: bool = True,
                    results_device: Optional[Union[str, torch.device]] = None) -> Iterator[List[InstanceData]]:
        """Consecutive clips of the same videos and samples -> per clip, as soon as it is predicted,
        N ``InstanceData`` over its frames (``predict_clip``). With ``test_cfg.link_clips`` one
        ``ClipLinker`` follows each sample's objects from clip to clip (sample n of every clip is the
        same expression); otherwise every clip chooses on its own. Nothing of a clip is kept once it
        is handed out."""
        linker = ClipLinker(self.options) if self.options.link_clips else None
        for clips, data_samples, clip_index in stream:
            results = self.predict_clip(clips, data_samples, clip_index, rescale=rescale, linker=linker)
            yield results if results_device is None else [r.to(results_device) for r in results]

    # ------------------------------------------------------------------ one clip
    @torch.no_grad()
    def predict_clip(self, clips: Tensor, data_samples: Sequence, clip_index: Tensor,
                     rescale: bool = True, linker: Optional[ClipLinker] = None) -> List[InstanceData]:
        """One clip of G videos [G, T, 3, Hp, Wp] (all its frames at once) for N samples
        (``expression``, ``img_shape``, ...; ``clip_index`` int64 [N]: the clip of each sample).

        Text-independent stages once per clip, text encoder once for the N expressions,
        text-dependent stages and head over at most ``expressions_per_batch`` pairs at a time.
        ``linker``: the stream's ``ClipLinker`` (``test_cfg.link_clips``; sample n is its sample n),
        which chooses the objects instead of ``select_objects``; None: the clip chooses on its own.
        Returns N ``InstanceData`` over the clip's frames (``SOCHead.predict_by_feat``).
        """
        clip_samples = self._clip_samples(clips, data_samples, clip_index)
        if self.options.bf16:
            if clips.is_cuda:
                raise ValueError('test_cfg.bf16 is for CPU inference: mmcv 2.1\'s CUDA deformable attention has no '
                                 'bfloat16 kernel (use fp16 autocast / AmpOptimWrapper on GPUs)')
            with torch.autocast(clips.device.type, dtype=torch.bfloat16):
                results = self._predict_clip(clips, data_samples, clip_samples, clip_index, rescale, linker)
            for result in results:  # float32 results (scores) whatever the compute type
                for key in result.keys():
                    value = result.get(key)
                    if isinstance(value, Tensor) and value.is_floating_point():
                        result.set_field(value.float(), key)
            return results
        return self._predict_clip(clips, data_samples, clip_samples, clip_index, rescale, linker)

    def _predict_clip(self, clips: Tensor, data_samples: Sequence, clip_samples: list, clip_index: Tensor,
                      rescale: bool, linker: Optional[ClipLinker] = None) -> List[InstanceData]:
        model = self.model
        results = []
        for part, head_inputs in self._head_inputs(clips, data_samples, clip_samples, clip_index):
            if linker is None:
                results += model.bbox_head.predict(**head_inputs, rescale=rescale, options=self.options)
            else:
                candidates = model.bbox_head.predict_candidates(**head_inputs, options=self.options)
                results += self.choose(candidates, data_samples[part], rescale=rescale, linker=linker,
                                       first_sample=part.start)
        return results

    def _head_inputs(self, clips: Tensor, data_samples: Sequence, clip_samples: list,
                     clip_index: Tensor) -> Iterator[Tuple[slice, dict]]:
        """Text-independent stages once, text encoder once, then per chunk of at most
        ``expressions_per_batch`` samples: (its slice of the samples, the head's inputs)."""
        model = self.model
        text_feats = model.extract_text_feat(get_texts(data_samples))
        clip_feats = model.extract_feat(clips, clip_samples)
        num_frames = clip_feats['mlvl_feats'][0].shape[0] // clips.shape[0]
        step = self.options.expressions_per_batch or len(data_samples)
        for start in range(0, len(data_samples), step):
            part = slice(start, min(start + step, len(data_samples)))
            head_inputs_dict = model.forward_transformer(
                **expand_clip_feats(clip_feats, clip_index[part], num_frames),
                **{key: value[part] for key, value in text_feats.items()})
            yield part, dict({key: head_inputs_dict[key] for key in model.bbox_head.predict_inputs},
                             batch_data_samples=data_samples[part])

    # ------------------------------------------------------------------ choosing apart from the model
    @torch.no_grad()
    def clip_candidates(self, clips: Tensor, data_samples: Sequence, clip_index: Tensor) -> Dict[str, Tensor]:
        """Every query's outputs on one clip, before any choice (``SOCHead.predict_candidates``): ``cls``
        [N, T, nq, K], ``masks`` [N, T, nq, h, w], ``query_feats`` [N, nq, C] of the N samples (float32,
        whatever ``bf16`` says). With ``choose`` this is ``predict_clip`` in two steps, so that a tool can
        compare selection rules (``object_selection``, ``link_clips``, ``presence_thr``, ...) on one model
        run (e.g. choosing ``presence_thr`` on a calibration split)."""
        clip_samples = self._clip_samples(clips, data_samples, clip_index)
        parts = [self.model.bbox_head.predict_candidates(**head_inputs, options=self.options)
                 for _, head_inputs in self._head_inputs(clips, data_samples, clip_samples, clip_index)]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def choose(self, candidates: Dict[str, Tensor], data_samples: Sequence, rescale: bool = True,
               linker: Optional[ClipLinker] = None, first_sample: int = 0) -> List[InstanceData]:
        """The objects of each sample from its clip's ``candidates`` (``clip_candidates`` /
        ``SOCHead.predict_candidates``) and the post-processing (``SOCHead.predict_by_feat`` with these
        options). ``linker``: the stream's ``ClipLinker`` (``data_samples[b]`` is its sample
        ``first_sample + b``); None: each sample chooses on its own (``select_objects``), as ``predict_clip``
        without a linker. Returns one ``InstanceData`` per sample over the clip's frames."""
        selected, presence = None, candidates.get('presence')
        if linker is not None:
            selected = [linker.select(first_sample + b, candidates['cls'][b], candidates['masks'][b],
                                      candidates['query_feats'][b],
                                      presence=None if presence is None else presence[b])
                        for b in range(len(data_samples))]
        return self.model.bbox_head.predict_by_feat(candidates['cls'], candidates['masks'],
                                                    [s.metainfo for s in data_samples], rescale=rescale,
                                                    options=self.options, selected=selected, presence=presence)

    @staticmethod
    def _clip_samples(clips: Tensor, data_samples: Sequence, clip_index: Tensor) -> list:
        """Check a (clips, samples, clip_index) batch; one representative sample per clip."""
        if clips.dim() != 5:
            raise ValueError(f'SOC expects clips [G, T, 3, H, W], got {tuple(clips.shape)}')
        if clip_index.dim() != 1 or clip_index.numel() != len(data_samples):
            raise ValueError(f'clip_index has {clip_index.numel()} entries for {len(data_samples)} samples')
        G = clips.shape[0]
        if clip_index.numel() and (int(clip_index.min()) < 0 or int(clip_index.max()) >= G):
            raise ValueError(f'clip_index must lie in [0, {G}), got {clip_index.tolist()}')
        representative = {}
        for n, g in enumerate(clip_index.tolist()):
            first = representative.setdefault(g, n)
            for key in ('img_shape', 'valid_frame_idx'):
                a, b = data_samples[first].metainfo.get(key), data_samples[n].metainfo.get(key)
                if (None if a is None else list(a)) != (None if b is None else list(b)):
                    raise ValueError(f'samples {first} and {n} share clip {g} but differ in {key}: {a} vs {b} '
                                     '(a random test pipeline cannot share clips: set test_cfg.share_clips=False)')
        if sorted(representative) != list(range(G)):
            raise ValueError(f'every clip needs at least one sample: clip_index {clip_index.tolist()}, {G} clips')
        return [data_samples[representative[g]] for g in range(G)]
