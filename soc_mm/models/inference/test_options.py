"""SOC's test-time options: ``model.test_cfg=dict(...)`` of a config, parsed once.

``RVOSTestOptions.from_cfg`` is the one reading of ``test_cfg``: every check, every default, and the
messages for renamed, moved and unknown keys live here. ``SOC`` parses its ``test_cfg`` when it is
built and hands the same frozen object to its head (``SOCHead``) and to the video-level inference
(``VideoInference``); ``soc_mm.apis`` reads the model's object. Two groups of options:

* what the head returns (``SOCHead.predict`` / ``predict_by_feat``): ``output_layer``,
  ``object_selection``, ``score_thr``, ``allow_no_target``, ``return_all_queries``, ``presence_thr``;
* how a video is run through the model (``VideoInference``): ``clip_len``,
  ``expressions_per_batch``, ``share_clips``, ``bf16``, ``link_clips``, ``link_margin``.

None of them changes the paper's model: the defaults give SOC's own outputs (each clip chooses its
objects on its own, a mask on every frame).

Change the options of a built model with ``model.test_options = model.test_options.replace(clip_len=8)``
(checked like the config); in a config or on the command line: ``--cfg-options
model.test_cfg.clip_len=8``.
"""
import dataclasses
import difflib
import numbers
from types import MappingProxyType
from typing import Any, Mapping, Optional, Union

from soc_mm.utils.cli import register_fixed_keys

OUTPUT_LAYERS = ('first', 'last')
OBJECT_SELECTIONS = ('top1', 'threshold')

# ``soc_mm.apis.inference_rvos`` reads a video (a file: its length is unknown before reading) in clips of
# ``clip_len`` frames so that memory does not grow with the video's length; when the options say
# "whole video" (``clip_len=None``, the test loop's default) it reads clips of this many frames
# (Ref-YouTube-VOS / Ref-DAVIS: the official evaluation's clip length).
STREAM_CLIP_LEN = 36

# old test_cfg key -> (where it is now, what happened)
RENAMED_KEYS = {
    'output_level': ('test_cfg.output_layer',
                     "was renamed test_cfg.output_layer (a decoder layer: 'first', 'last' or an index)"),
    'fast_kernels': ('model.fast_kernels', 'moved to the model (the kernels also serve training)'),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class RVOSTestOptions:
    """The test-time options of a SOC model (``model.test_cfg``), checked when created.

    Head (what ``SOCHead.predict`` returns):

    Args:
        output_layer (str | int): the decoder layer whose heads give the outputs: 'first' (default;
            the official evaluation: the first layer's heads, with the last layer's VOC output),
            'last', or a layer index in [-L, L) (checked against L by ``layer_index``).
        object_selection (str): 'top1' (default; the query with the highest time-averaged score) or
            'threshold' (every query whose score is above ``score_thr``: several objects; see
            ``soc_mm.models.dense_heads.soc_head.select_objects``).
        score_thr (float, optional): a probability in [0, 1]; required by 'threshold'. Default None.
        allow_no_target (bool): 'threshold' selects nothing (empty masks) when no query is above
            ``score_thr``; True only with 'threshold'. Default False.
        return_all_queries (bool): also return every query's masks and scores (``pred_instances``:
            the A2D-Sentences / JHMDB-Sentences / RefCOCO mAP). Default False.
        presence_thr (float, optional): absence over time: on each frame, a selected object whose
            frame score (its class probability on that frame) is not above ``presence_thr`` is absent
            there and gets an empty mask (top-1 and threshold selection alike). Default None: every
            selected object is painted on every frame (SOC's output). Choose it on a calibration
            split (docs/long_videos.md).

    Schedule (how ``VideoInference`` runs a video through the model):

    Args:
        clip_len (int, optional): frames per clip; a longer video is processed as consecutive clips,
            each choosing its own objects (unless ``link_clips``). Default None: whole videos in one clip (the API reads
            files in clips of ``STREAM_CLIP_LEN`` then).
        expressions_per_batch (int, optional): at most this many (clip, expression) pairs through
            the text-dependent stages at a time (bounds the memory). Default None: all.
        share_clips (bool): samples of a batch showing the same clip (``soc_mm.structures.clip_key``)
            run the text-independent stages (backbone, neck) once. Default True.
        bf16 (bool): run under CPU bfloat16 autocast (results in float32). Default False.
        link_clips (bool): the same object across clips: the objects chosen in one clip are followed
            into the next one (the candidate whose first-frame mask overlaps the followed object's
            last-frame mask most, or whose query embedding is closest when the object was not seen on
            that frame) unless the next clip's evidence for another candidate is clearly stronger
            (``link_margin``; ``soc_mm.models.inference.clip_linking``). Default False: each clip
            chooses on its own, exactly as SOC.
        link_margin (float): how much clearly stronger: top-1 leaves the followed object for the
            clip's best query when the best one's clip score exceeds the followed one's by more than
            ``link_margin``; threshold selection keeps a followed object while its clip score is above
            ``score_thr - link_margin``. A probability difference in [0, 1]. Default 0.2.
    """

    # head
    output_layer: Union[str, int] = 'first'
    object_selection: str = 'top1'
    score_thr: Optional[float] = None
    allow_no_target: bool = False
    return_all_queries: bool = False
    presence_thr: Optional[float] = None
    # schedule
    clip_len: Optional[int] = None
    expressions_per_batch: Optional[int] = None
    share_clips: bool = True
    bf16: bool = False
    link_clips: bool = False
    link_margin: float = 0.2

    def __post_init__(self) -> None:
        layer = self.output_layer
        if not (layer in OUTPUT_LAYERS if isinstance(layer, str) else _is_int(layer)):
            raise ValueError(f"test_cfg.output_layer must be 'first', 'last' or a decoder layer index, got {layer!r}")
        if _is_int(layer):
            object.__setattr__(self, 'output_layer', int(layer))
        mode = self.object_selection
        if not isinstance(mode, str) or mode not in OBJECT_SELECTIONS:
            raise ValueError(f'test_cfg.object_selection must be one of {OBJECT_SELECTIONS}, got {mode!r}')
        for key in ('score_thr', 'presence_thr', 'link_margin'):
            thr = getattr(self, key)
            if thr is None and key != 'link_margin':
                continue
            if isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not 0 <= thr <= 1:
                what = 'a probability difference' if key == 'link_margin' else 'a probability'
                raise ValueError(f'test_cfg.{key} must be {what} in [0, 1], got {thr!r}')
            object.__setattr__(self, key, float(thr))
        thr = self.score_thr
        if mode == 'threshold' and thr is None:
            raise ValueError("test_cfg.score_thr is required with test_cfg.object_selection='threshold' (the "
                             'time-averaged class probability a video query must exceed)')
        for key in ('allow_no_target', 'return_all_queries', 'share_clips', 'bf16', 'link_clips'):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f'test_cfg.{key} must be True or False, got {getattr(self, key)!r}')
        if self.allow_no_target and mode != 'threshold':
            raise ValueError("test_cfg.allow_no_target=True needs test_cfg.object_selection='threshold' "
                             f'(top-1 always selects one object), got object_selection={mode!r}')
        for key in ('clip_len', 'expressions_per_batch'):
            value = getattr(self, key)
            if value is not None:
                if not _is_int(value) or value < 1:
                    raise ValueError(f'test_cfg.{key} must be None or an int >= 1, got {value!r}')
                object.__setattr__(self, key, int(value))

    # ------------------------------------------------------------------ reading test_cfg
    @classmethod
    def from_cfg(cls, cfg: Union[None, Mapping, 'RVOSTestOptions'],
                 num_layers: Optional[int] = None) -> 'RVOSTestOptions':
        """Parse a ``test_cfg`` dict (None: the defaults; an ``RVOSTestOptions`` is returned as is).

        Raises a ValueError naming the key for a renamed or moved key (with its replacement), an
        unknown key (with the closest known one) or a wrong value; with ``num_layers`` (L, the
        decoder layers) also when ``output_layer`` is not a layer of the model.
        """
        if isinstance(cfg, cls):
            options = cfg
        else:
            if cfg is not None and not isinstance(cfg, Mapping):
                raise TypeError(f'test_cfg must be a dict of test options, got {type(cfg).__name__}')
            cfg = dict(cfg or {})
            check_keys(cfg)
            options = cls(**cfg)
        if num_layers is not None:
            options.layer_index(num_layers)
        return options

    def replace(self, **changes) -> 'RVOSTestOptions':
        """A copy with ``changes`` (``test_cfg`` keys), checked as ``from_cfg`` checks a config."""
        check_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_cfg(self) -> dict:
        """Every option as a ``test_cfg`` dict (``from_cfg(options.to_cfg()) == options``)."""
        return dataclasses.asdict(self)

    def as_mapping(self) -> Mapping:
        """A read-only ``test_cfg`` view of the options (``model.test_cfg``)."""
        return MappingProxyType(self.to_cfg())

    def layer_index(self, num_layers: int) -> int:
        """``output_layer`` as an index in [0, num_layers) of a model with ``num_layers`` decoder layers."""
        layer = self.output_layer
        if layer == 'first':
            return 0
        if layer == 'last':
            return num_layers - 1
        if not -num_layers <= layer < num_layers:
            raise ValueError(f"test_cfg.output_layer must be 'first', 'last' or a decoder layer index in "
                             f'[{-num_layers}, {num_layers}), got {layer!r}')
        return layer % num_layers


TEST_OPTION_NAMES = tuple(field.name for field in dataclasses.fields(RVOSTestOptions))

# ``--cfg-options model.test_cfg.KEY=...`` (soc_mm.utils.cli) accepts these keys only: the options, and the
# renamed ones, whose message from_cfg gives.
register_fixed_keys('model.test_cfg', TEST_OPTION_NAMES + tuple(RENAMED_KEYS))


def check_keys(cfg: Mapping) -> None:
    """Raise a ValueError for the first renamed, moved or unknown key of a ``test_cfg``."""
    for key, value in cfg.items():
        if key in TEST_OPTION_NAMES:
            continue
        if key in RENAMED_KEYS:
            new, what = RENAMED_KEYS[key]
            raise ValueError(f'test_cfg.{key} {what}: replace test_cfg.{key}={value!r} by {new}={value!r} '
                             'in the config')
        close = difflib.get_close_matches(str(key), TEST_OPTION_NAMES, n=1, cutoff=0.5)
        hint = f'did you mean test_cfg.{close[0]}? ' if close else ''
        raise ValueError(f'test_cfg.{key} is not a test option ({hint}known: {", ".join(TEST_OPTION_NAMES)})')
