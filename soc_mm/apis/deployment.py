"""SOC beyond PyTorch: export to ONNX and inference with ONNX Runtime on CPU.

The exported graph is one clip of one video against N expressions, from the normalised frames to the
head outputs of the ``test_cfg.output_layer`` decoder layer::

    frames          float32 [1, T, 3, H, W]  normalised, padded clip (``RVOSDataPreprocessor``)
    img_shape       int64   [2]              unpadded (h, w) of the frames in ``frames``
    input_ids       int64   [N, S]           RoBERTa token ids of the N expressions (padded)
    attention_mask  int64   [N, S]           1 on tokens, 0 on padding
    ->
    cls_logits      float32 [N, T, nq, K]    class logits of every query and frame
    mask_logits     float32 [N, T, nq, H/4, W/4]  mask logits (before the upsampling to H x W)
    (a head variant's per-frame outputs, ``SOCHead.frame_outputs``, after them: ``presence`` float32
    [N, T, nq] of ``PresenceSOCHead``; their names are in the graph's metadata, ``outputs``)

Tokenisation stays in Python (the HF tokenizer); the RoBERTa network is in the graph. N (expressions)
and S (tokens) are dynamic axes; T, H and W are fixed at export: Video-Swin chooses its window and
shift sizes and builds its shift masks in Python from the clip's (T, H, W), and the deformable
attention splits its value maps by the per-level sizes, so a graph traced for one clip shape computes
that shape only. Frames smaller than (H, W) after the test pipeline's resize are zero-padded and
``img_shape`` gives their size (the padding masks are computed in the graph, as in a padded batch).

Kernels of the export: the reference Video-Swin window attention and mmcv's pure-PyTorch multi-scale
deformable attention (``multi_scale_deformable_attn_pytorch``: ``grid_sample``, ONNX GridSample,
opset >= 16); the dynamic mask head runs as batched matrix products (``FastDynamicMaskHead``: the
reference's grouped convolution has one group per (expression, frame, query), which ONNX cannot
express with a dynamic number of expressions). Same maths as the default model to float rounding.

Post-processing (object selection, upsampling, thresholding: ``SOCHead.predict_by_feat``) and the
clip schedule stay in Python: :class:`ONNXRuntimeSOC` runs the graph clip by clip and returns the
same ``RVOSDataSample`` results as ``soc_mm.apis.inference_rvos``.
"""
import contextlib
import copy
import json
import os
import os.path as osp
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import Tensor, nn

from soc_mm.models.inference import RVOSTestOptions
from soc_mm.structures import RVOSDataSample

#: names of the graph's inputs and its first outputs, in order (a head variant's ``frame_outputs`` follow)
INPUT_NAMES = ('frames', 'img_shape', 'input_ids', 'attention_mask')
OUTPUT_NAMES = ('cls_logits', 'mask_logits')
#: the ONNX opset of the export (GridSample needs >= 16)
DEFAULT_OPSET = 17
#: key of the graph's metadata (``metadata_props``) that holds the export settings (JSON)
METADATA_KEY = 'soc_mm'


# ---------------------------------------------------------------------- the exported module
class SOCExportModule(nn.Module):
    """One clip of one video and N expressions -> the heads of one decoder layer (see the module
    docstring for the tensors). Runs the SOC model's own stages (``backbone``, ``neck``,
    ``positional_encoding``, ``forward_transformer``, ``bbox_head.forward_single``) with the clip's
    features repeated for the N expressions, as ``VideoInference`` does.

    Args:
        model (nn.Module): a SOC model in eval mode (``soc_mm.apis.init_model``).

    Attributes:
        output_names (tuple[str]): the names of the outputs: ``OUTPUT_NAMES``, then the head's
            ``frame_output_names``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.layer = model.output_layer
        self.output_names = head_output_names(model.bbox_head)

    def forward(self, frames: Tensor, img_shape: Tensor, input_ids: Tensor,
                attention_mask: Tensor) -> Tuple[Tensor, ...]:
        """frames [1, T, 3, H, W], img_shape int64 [2], input_ids / attention_mask int64 [N, S] ->
        cls_logits [N, T, nq, K], mask_logits [N, T, nq, H/4, W/4], then the head's ``frame_outputs`` (each
        [N, T, nq], in the order of ``output_names``)."""
        model = self.model
        num_frames, pad_h, pad_w = frames.shape[1], frames.shape[3], frames.shape[4]
        num_expressions = input_ids.shape[0]
        # text: RoBERTaTextEncoder.forward after its tokenisation
        encoder = model.text_encoder
        outputs = encoder.model(input_ids=input_ids, attention_mask=attention_mask)
        word_feats = encoder.proj(outputs.last_hidden_state)
        sentence_feat = encoder.proj(encoder.sentence_feature(outputs, attention_mask))
        word_padding_mask = attention_mask.ne(1)
        # vision: SOC.extract_feat with the padding mask from img_shape
        backbone_feats = model.backbone(frames)
        rows = torch.arange(pad_h, device=frames.device)
        cols = torch.arange(pad_w, device=frames.device)
        mask = (rows[:, None] >= img_shape[0]) | (cols[None, :] >= img_shape[1])  # [H, W], True on padding
        mask = mask[None].expand(num_frames, -1, -1)
        mlvl_feats = model.neck(tuple(backbone_feats[-model.num_backbone_levels:]))
        mlvl_masks = [F.interpolate(mask[None].float(), size=f.shape[-2:]).to(torch.bool)[0] for f in mlvl_feats]
        mlvl_pos_embeds = [model.positional_encoding(m) for m in mlvl_masks]

        def per_expression(maps: List[Tensor]) -> List[Tensor]:  # [T, ...] -> [(N T), ...]
            return [x.repeat(num_expressions, *([1] * (x.dim() - 1))) for x in maps]

        head_inputs = model.forward_transformer(
            per_expression(backbone_feats), per_expression(mlvl_feats), per_expression(mlvl_masks),
            per_expression(mlvl_pos_embeds), word_feats, word_padding_mask, sentence_feat)
        hidden_states, references = head_inputs['hidden_states'], head_inputs['references']
        layer = self.layer
        img_sizes = img_shape[None].expand(num_expressions, 2)
        head = model.bbox_head
        cls, _, masks = head.forward_single(
            hidden_states[layer], references[layer], references[layer + 1][..., :2], head_inputs['mask_feats'],
            img_sizes, layer)
        extras = head.frame_outputs(layer, img_sizes, **{key: head_inputs[key] for key in head.predict_inputs})
        if set(extras) != set(head.frame_output_names):
            raise ValueError(f'{type(head).__name__}.frame_outputs gave {sorted(extras)}, its frame_output_names '
                             f'declare {list(head.frame_output_names)}')
        return (cls, masks, *[extras[name] for name in head.frame_output_names])


def _constant_shift_mask(compute_mask):
    """mmaction's Video-Swin ``compute_mask`` computed outside the trace: the shifted-window mask depends
    on the clip shape only (fixed in the graph), so it enters the graph as a constant instead of traced
    slice assignments (whose empty slices, e.g. no temporal shift in a clip of one window, the
    TorchScript exporter cannot convert)."""

    def constant(D, H, W, window_size, shift_size, device):
        state = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)  # not recorded: the result is a constant of the graph
        try:
            return compute_mask(int(D), int(H), int(W), tuple(int(x) for x in window_size),
                                tuple(int(x) for x in shift_size), device)
        finally:
            torch._C._set_tracing_state(state)

    return constant


@contextlib.contextmanager
def export_kernels(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model`` runs the kernels that export (reference window attention, mmcv's
    pure-PyTorch deformable attention, the batched dynamic mask head) and Video-Swin's shift masks are
    constants when traced; the kernels (and mmaction's ``compute_mask``) are restored after."""
    from mmaction.models.backbones import swin
    from soc_mm.models.layers.dynamic_mask_head import DynamicMaskHead
    from soc_mm.models.layers.fast_kernels import (FAST_KERNELS, FastDynamicMaskHead, _REFERENCE_KERNELS)
    saved = [(m, type(m)) for m in model.modules() if type(m) in FAST_KERNELS or type(m) in _REFERENCE_KERNELS]
    compute_mask = swin.compute_mask
    try:
        for module, cls in saved:
            reference = _REFERENCE_KERNELS.get(cls, cls)
            module.__class__ = FastDynamicMaskHead if reference is DynamicMaskHead else reference
        swin.compute_mask = _constant_shift_mask(compute_mask)
        yield model
    finally:
        swin.compute_mask = compute_mask
        for module, cls in saved:
            module.__class__ = cls


def example_inputs(model: nn.Module, num_frames: int, size: Sequence[int],
                   expressions: Sequence[str] = ('the object on the left', 'a person')) -> Tuple[Tensor, ...]:
    """Inputs of the graph for tracing and checks: a random normalised clip [1, T, 3, H, W] of the
    full size and the tokens of ``expressions``."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(1, num_frames, 3, int(size[0]), int(size[1]), generator=generator)
    tokens = model.text_encoder.tokenize(list(expressions))
    return (frames, torch.tensor([int(size[0]), int(size[1])]), tokens['input_ids'].cpu(),
            tokens['attention_mask'].cpu())


def export_onnx(model: nn.Module, out_file: str, num_frames: int = 8, size: Sequence[int] = (360, 640),
                opset_version: int = DEFAULT_OPSET) -> dict:
    """Export ``model`` (a SOC in eval mode, on CPU) for clips of ``num_frames`` frames of ``size``
    (H, W) to ``out_file``, with N expressions and S tokens as dynamic axes.

    The export settings (clip shape, output layer, token limit, the model's config) are stored in
    the graph's metadata (``metadata_props['soc_mm']``, JSON), which :class:`ONNXRuntimeSOC` reads.

    Returns:
        dict: the metadata written.

    Raises:
        ValueError: a clip shape the model cannot take, a model that is not a SOC, an opset below 16.
    """
    import onnx
    if num_frames < 1 or len(size) != 2 or min(size) < 8:
        raise ValueError(f'export_onnx: clips need >= 1 frame of at least 8x8 pixels, got {num_frames} frames '
                         f'of {tuple(size)}')
    if opset_version < 16:
        raise ValueError(f'export_onnx: opset_version must be >= 16 (GridSample), got {opset_version}')
    for name in ('backbone', 'neck', 'text_encoder', 'bbox_head', 'forward_transformer'):
        if not hasattr(model, name):
            raise ValueError(f'export_onnx: the model ({type(model).__name__}) has no {name!r}: expected a SOC model')
    model = model.cpu().eval()
    inputs = example_inputs(model, num_frames, size)
    module = SOCExportModule(model).eval()
    dynamic_axes = {'input_ids': {0: 'expressions', 1: 'tokens'}, 'attention_mask': {0: 'expressions', 1: 'tokens'},
                    **{name: {0: 'expressions'} for name in module.output_names}}
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    with export_kernels(model), torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about every shape it records as a constant: T, H and W are fixed by design
        warnings.simplefilter('ignore')
        # in eval mode: the exporter gives the module its mode back afterwards, which a new module's
        # default (train) would spread to the model
        torch.onnx.export(module, inputs, out_file, dynamo=False, opset_version=opset_version,
                          input_names=list(INPUT_NAMES), output_names=list(module.output_names),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    cfg = getattr(model, 'cfg', None)
    metadata = dict(num_frames=int(num_frames), height=int(size[0]), width=int(size[1]),
                    output_layer=int(model.output_layer), max_tokens=int(model.text_encoder.max_tokens),
                    pad_value=float(getattr(model.data_preprocessor, 'pad_value', 0.0)),
                    outputs=list(module.output_names), config=cfg.pretty_text if isinstance(cfg, Config) else None)
    graph = onnx.load(out_file, load_external_data=False)
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(graph, out_file)
    return metadata


def relative_difference(reference: Tensor, other) -> float:
    """max |reference - other| / max |reference| (0 when both are 0)."""
    other = torch.as_tensor(np.asarray(other))
    scale = float(reference.abs().max())
    diff = float((reference.float() - other.float()).abs().max())
    return diff / scale if scale > 0 else diff


@torch.no_grad()
def eager_outputs(model: nn.Module, inputs: Sequence[Tensor], kernels: str = 'default') -> Tuple[Tensor, ...]:
    """The graph's outputs (``SOCExportModule.output_names``) computed by eager PyTorch: ``kernels`` 'default'
    (the model's own kernels: the fused ones by default) or 'export' (the kernels traced into the graph,
    ``export_kernels``)."""
    if kernels not in ('default', 'export'):
        raise ValueError(f"kernels must be 'default' or 'export', got {kernels!r}")
    module = SOCExportModule(model).eval()
    if kernels == 'export':
        with export_kernels(model):
            return module(*inputs)
    return module(*inputs)


def verify_onnx(model: nn.Module, onnx_file: str, inputs: Optional[Sequence[Tensor]] = None,
                kernels: str = 'default', num_threads: Optional[int] = None) -> Dict[str, float]:
    """Run ``onnx_file`` in ONNX Runtime and ``model`` in eager PyTorch on the same inputs (default:
    ``example_inputs`` at the graph's clip shape) -> {output name: largest difference relative to the
    largest |value| of the eager output}."""
    import onnxruntime as ort
    meta = read_metadata(onnx_file)
    if inputs is None:
        inputs = example_inputs(model, meta['num_frames'], (meta['height'], meta['width']))
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
    names = graph_output_names(meta)
    expected = head_output_names(model.bbox_head)
    if tuple(names) != tuple(expected):
        raise ValueError(f'{onnx_file}: the graph gives {list(names)}, the model {list(expected)} (its head '
                         f'{type(model.bbox_head).__name__}): not a graph of this model')
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    outputs = session.run(list(names), {name: x.numpy() for name, x in zip(INPUT_NAMES, inputs)})
    reference = eager_outputs(model, inputs, kernels)
    return {name: relative_difference(ref, out) for name, ref, out in zip(names, reference, outputs)}


def head_output_names(head: nn.Module) -> Tuple[str, ...]:
    """The outputs of the graph of a model with ``head``: ``OUTPUT_NAMES``, then its ``frame_output_names``."""
    return OUTPUT_NAMES + tuple(head.frame_output_names)


def graph_output_names(metadata: dict) -> List[str]:
    """The output names of a graph from its metadata (graphs written before the names were stored have the two
    logits only)."""
    return list(metadata.get('outputs', OUTPUT_NAMES))


# ---------------------------------------------------------------------- ONNX Runtime
def read_metadata(onnx_file: str) -> dict:
    """The export settings stored by :func:`export_onnx` in ``onnx_file``."""
    import onnx
    if not osp.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX file not found: {onnx_file}')
    graph = onnx.load(onnx_file, load_external_data=False)
    for entry in graph.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ValueError(f'{onnx_file}: no {METADATA_KEY!r} metadata: not a graph written by '
                     'tools/deployment/export_onnx.py')


class ONNXRuntimeSOC:
    """A SOC graph exported by :func:`export_onnx`, run by ONNX Runtime on CPU, with the Python parts
    of SOC's inference around it: the config's test pipeline and data pre-processor, the RoBERTa
    tokenizer, ``SOCHead.predict_by_feat`` (object selection, upsampling, thresholding) and the merge of
    the clips' results.

    Args:
        onnx_file (str): the graph.
        config (str | Config, optional): the model config (its test pipeline, data pre-processor, text
            encoder folder for the tokenizer, head and test options); default: the config stored in
            the graph at export.
        cfg_options (dict, optional): overrides merged into the config (e.g.
            ``{'model.text_encoder.model_path': 'pretrained/roberta-base'}``).
        num_threads (int, optional): ONNX Runtime intra-op threads (None: its default).

    Attributes:
        num_frames, height, width (int): the clip shape of the graph (fixed at export).
        cfg (Config), test_options (RVOSTestOptions), data_preprocessor (nn.Module), session.
    """

    def __init__(self, onnx_file: str, config: Union[None, str, Config] = None,
                 cfg_options: Optional[dict] = None, num_threads: Optional[int] = None) -> None:
        import onnxruntime as ort
        from transformers import RobertaTokenizerFast
        import soc_mm  # noqa: F401  (registers every module)
        from soc_mm.registry import MODELS
        self.onnx_file = onnx_file
        self.metadata = meta = read_metadata(onnx_file)
        if config is None:
            if not meta.get('config'):
                raise ValueError(f'{onnx_file}: the graph holds no config; pass the model config')
            config = Config.fromstring(meta['config'], '.py')
        elif isinstance(config, (str, os.PathLike)):
            if not osp.isfile(config):
                raise FileNotFoundError(f'ONNXRuntimeSOC: config file not found: {config}')
            config = Config.fromfile(config)
        config = copy.deepcopy(config)
        if cfg_options:
            config.merge_from_dict(cfg_options)
        self.cfg = config
        self.num_frames, self.height, self.width = meta['num_frames'], meta['height'], meta['width']
        self.max_tokens, self.pad_value = meta['max_tokens'], meta.get('pad_value', 0.0)
        model_cfg = config.model
        self.data_preprocessor = MODELS.build(model_cfg.get('data_preprocessor', dict(type='RVOSDataPreprocessor')))
        num_layers = model_cfg.decoder['num_layers']
        self.test_options = RVOSTestOptions.from_cfg(model_cfg.get('test_cfg'), num_layers=num_layers)
        if self.test_options.layer_index(num_layers) != meta['output_layer']:
            raise ValueError(f'{onnx_file}: the graph gives decoder layer {meta["output_layer"]}, the config\'s '
                             f'test_cfg.output_layer is layer {self.test_options.layer_index(num_layers)}: export '
                             'the graph with this config')
        # the head only post-processes here (its layers are in the graph)
        head_cfg = copy.deepcopy(model_cfg.bbox_head)
        head_cfg.update(train_cfg=model_cfg.get('train_cfg'), test_cfg=self.test_options)
        self.head = MODELS.build(head_cfg).eval()
        self.output_names = graph_output_names(meta)
        expected = list(head_output_names(self.head))
        if self.output_names != expected:
            raise ValueError(f'{onnx_file}: the graph gives {self.output_names}, the config\'s head '
                             f'({type(self.head).__name__}) post-processes {expected}: export the graph with this '
                             'config')
        text_dir = model_cfg.text_encoder['model_path']
        if not osp.isdir(text_dir):
            raise FileNotFoundError(f'ONNXRuntimeSOC: the tokenizer folder {text_dir!r} (config '
                                    'model.text_encoder.model_path) is not a directory; pass '
                                    "cfg_options={'model.text_encoder.model_path': FOLDER}")
        self.tokenizer = RobertaTokenizerFast.from_pretrained(text_dir)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])

    # ------------------------------------------------------------------ the graph
    def tokenize(self, expressions: Sequence[str]) -> Dict[str, np.ndarray]:
        """As ``RoBERTaTextEncoder.tokenize``: padded to the longest, truncated to ``max_tokens``."""
        tokens = self.tokenizer(list(expressions), padding='longest', truncation=True, max_length=self.max_tokens,
                                return_tensors='np')
        return dict(input_ids=tokens['input_ids'].astype(np.int64),
                    attention_mask=tokens['attention_mask'].astype(np.int64))

    def run(self, frames: np.ndarray, img_shape: Sequence[int], input_ids: np.ndarray,
            attention_mask: np.ndarray) -> Dict[str, np.ndarray]:
        """One forward of the graph (inputs as in the module docstring) -> {output name: array}
        (``cls_logits``, ``mask_logits`` and the head's per-frame outputs, e.g. ``presence``)."""
        expected = (1, self.num_frames, 3, self.height, self.width)
        if tuple(frames.shape) != expected:
            raise ValueError(f'{self.onnx_file}: the graph takes clips {list(expected)} (fixed at export), '
                             f'got frames {list(frames.shape)}')
        feed = dict(frames=np.ascontiguousarray(frames, dtype=np.float32),
                    img_shape=np.asarray(img_shape, dtype=np.int64), input_ids=input_ids,
                    attention_mask=attention_mask)
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))

    # ------------------------------------------------------------------ clips
    def pad_clip(self, inputs: Tensor, samples: Sequence[RVOSDataSample]) -> Tensor:
        """A pre-processed clip [1, T, 3, h, w] -> zero-padded (bottom / right) to the graph's (H, W);
        the samples' ``batch_input_shape`` / ``pad_shape`` become (H, W)."""
        h, w = inputs.shape[-2:]
        if h > self.height or w > self.width:
            raise ValueError(f'{self.onnx_file}: the frames are {h}x{w} after the test pipeline\'s resize, larger '
                             f'than the {self.height}x{self.width} the graph takes (export it with --size '
                             f'{max(h, self.height)} {max(w, self.width)}, or resize to at most that)')
        inputs = F.pad(inputs, (0, self.width - w, 0, self.height - h), value=self.pad_value)
        for sample in samples:
            sample.set_metainfo(dict(batch_input_shape=(self.height, self.width),
                                     pad_shape=(self.height, self.width)))
        return inputs

    def predict_clip(self, inputs: Tensor, samples: Sequence[RVOSDataSample], tokens: Dict[str, np.ndarray],
                     options: Optional[RVOSTestOptions] = None) -> list:
        """One pre-processed clip [1, T, 3, h, w] (T = ``num_frames``) and its N samples -> N
        ``InstanceData`` over the T frames (``SOCHead.predict_by_feat``)."""
        inputs = self.pad_clip(inputs, samples)
        img_shape = samples[0].metainfo['img_shape'][:2]
        outputs = self.run(inputs.numpy(), img_shape, tokens['input_ids'], tokens['attention_mask'])
        extras = {name: torch.from_numpy(outputs[name]) for name in self.head.frame_output_names}
        return self.head.predict_by_feat(torch.from_numpy(outputs['cls_logits']),
                                         torch.from_numpy(outputs['mask_logits']), [s.metainfo for s in samples],
                                         rescale=True, options=options or self.test_options, **extras)

    def stream(self, video, expressions: Union[str, Sequence[str]], channel_order: str = 'rgb',
               test_options: Optional[RVOSTestOptions] = None,
               test_pipeline: Optional[Sequence[dict]] = None) -> Iterator:
        """``soc_mm.apis.stream_rvos`` with the graph: the video read lazily in consecutive clips of the
        graph's T frames, every expression of a clip in one forward, each clip yielded as soon as it is
        predicted (``StreamClip``: ``index``, ``start``, ``frames`` BGR, ``results`` one ``RVOSDataSample``
        per expression over the clip's frames). A last clip of r < T frames is run on the video's last T
        frames (it overlaps the previous clip) and only its last r frames are kept; a video shorter than
        T frames is refused.

        Args:
            video, expressions, channel_order, test_pipeline: as ``inference_rvos``.
            test_options (RVOSTestOptions, optional): the head's options of this call (object selection,
                score threshold, ``presence_thr``); its ``clip_len`` is the graph's. ``link_clips`` is not
                available (the clips' objects are chosen clip by clip).

        Raises:
            ValueError: as ``inference_rvos``, and a video shorter than T frames, frames larger than the
            graph's size after the resize, ``link_clips``.
        """
        from soc_mm.apis.inference import StreamClip, _check_expressions, _test_transforms, iter_video_frames
        expressions = _check_expressions(expressions)
        if test_options is not None and not isinstance(test_options, RVOSTestOptions):
            raise TypeError(f'test_options must be an RVOSTestOptions, got {type(test_options).__name__}')
        options = test_options or self.test_options
        if options.link_clips:
            raise ValueError(f'{self.onnx_file}: link_clips is not available with the ONNX graph (each clip '
                             'chooses its own objects)')
        transforms = _test_transforms(self, test_pipeline)
        tokens = self.tokenize(expressions)
        return self._stream(iter_video_frames(video, channel_order), expressions, options, transforms, tokens,
                            StreamClip)

    def _stream(self, frames: Iterator[np.ndarray], expressions: List[str], options: RVOSTestOptions,
                transforms: list, tokens: Dict[str, np.ndarray], clip_type) -> Iterator:
        """``stream``'s generator (its arguments already checked)."""
        from soc_mm.apis.inference import prepare_clip
        from soc_mm.models.detectors.soc import SOC
        from soc_mm.models.inference import iter_clips
        T = self.num_frames
        start, previous = 0, None
        for index, clip in enumerate(iter_clips(frames, T)):  # BGR frames
            keep = len(clip)
            if keep < T:  # the last clip: the video's last T frames, the new ones kept
                if previous is None:
                    raise ValueError(f'{self.onnx_file}: the video has {keep} frames, the graph takes clips of {T} '
                                     f'frames (fixed at export): export a graph with --num-frames {keep} or fewer')
                clip = previous[keep:] + clip
            inputs, samples = prepare_clip(self, clip, expressions, transforms)
            meta = samples[0].metainfo
            results = self.predict_clip(inputs, samples, tokens, options)
            if keep < T:
                results = [r[T - keep:] for r in results]
            samples = []
            for k, (expression, result) in enumerate(zip(expressions, results)):
                out = RVOSDataSample(metainfo=dict(expression=expression, exp_id=str(k), ori_shape=meta['ori_shape'],
                                                   img_shape=meta['img_shape'], num_frames=keep,
                                                   frame_ids=[str(i) for i in range(start, start + keep)]))
                samples.append(SOC.add_pred_to_datasample([out], [result])[0])
            yield clip_type(index=index, start=start, frames=clip[T - keep:], results=samples)
            start += keep
            previous = clip

    def inference(self, video, expressions: Union[str, Sequence[str]], channel_order: str = 'rgb',
                  test_options: Optional[RVOSTestOptions] = None, test_pipeline: Optional[Sequence[dict]] = None,
                  progress=None) -> List[RVOSDataSample]:
        """``soc_mm.apis.inference_rvos`` with the graph (the clips of :meth:`stream`, merged).

        Args:
            video, expressions, channel_order, test_options, test_pipeline: as :meth:`stream`.
            progress (callable, optional): called with the number of clips done after each clip.

        Returns:
            list[RVOSDataSample]: one per expression, as ``inference_rvos`` (``pred_masks`` bool [T, H0, W0],
            ``pred_scores`` [T], ...).
        """
        from soc_mm.apis.rvos_inferencer import concat_clip_samples
        parts, num_frames = None, 0
        for clip in self.stream(video, expressions, channel_order, test_options, test_pipeline):
            parts = [[] for _ in clip.results] if parts is None else parts
            for part, result in zip(parts, clip.results):
                part.append(result)
            num_frames += clip.num_frames
            if progress is not None:
                progress(clip.index + 1)
        return [concat_clip_samples(p, num_frames) for p in parts]
