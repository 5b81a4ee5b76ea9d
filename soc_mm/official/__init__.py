"""Compatibility with the official SOC code (RobertLuo1/NeurIPS2023_SOC).

This package sits above :mod:`soc_mm.models`: it imports the models, nothing in
``soc_mm.models`` / ``utils`` / ``datasets`` imports it; tools and tests use it.

* :mod:`.checkpoint` — the rule table and engine that convert official checkpoints
  (complete or an error listing every offender), checkpoint file loading, the check of a
  converted state dict against a model (keys, shapes, dtypes).
* :mod:`.convert` — an official checkpoint file converted to our checkpoint file, written only when
  every check passed (:func:`convert_official_checkpoint`: ``tools/model_converters/soc_official_to_mm.py``).
* :mod:`.config` — official configuration -> our model config (:func:`official_model_cfg`;
  every setting that changes the computation is translated, unknown keys are errors).
* :mod:`.loss_names` — our loss keys <-> the official criterion's keys and coefficients.
* :mod:`.reference` — the golden-fixture harness (build from an official configuration, load the
  fixture's official weights, compare outputs, losses and matcher assignments).
* :mod:`.outputs` — our SOC's outputs in the official model's layout.
* :mod:`.decoder_samples` — ``DecoderSamplingRecorder``: the official decoder's ``inter_samples`` (the
  sampling locations with the largest attention weights per layer), recovered from mmdet's deformable
  decoder without touching its forward.
* :mod:`.batch_regroup_soc` — ``BatchRegroupSOC`` / ``BatchRegroupSOCPlusPlus`` (registered on import):
  SOC / SOC++ with the official VOC's batch regrouping quirk, which the harness builds when the quirk mixes
  videos.
"""
from .batch_pairing_frame_scored_voc import BatchPairingFrameScoredVOC
from .batch_regroup_soc import BatchRegroupSOC, BatchRegroupSOCPlusPlus
from .checkpoint import (KEY_RULES, KNOWN_EXTRA_KEYS, OFFICIAL_LAYOUTS, SOCPP_KEY_RULES, OfficialCheckpointError,
                         check_state_dict_against_model, convert_official_key, convert_official_state_dict,
                         detect_official_layout, extract_official_state_dict, load_official_checkpoint)
from .config import NOT_AFFECTING_COMPUTATION, OfficialConfigError, load_official_config, official_model_cfg
from .convert import ConversionError, convert_official_checkpoint
from .loss_names import OFFICIAL_LOSS_COEFS, OFFICIAL_LOSS_NAMES, to_official_loss_name
from .socpp_class_target_head import SOCPlusPlusOfficialHead

__all__ = [
    'BatchPairingFrameScoredVOC', 'BatchRegroupSOC', 'BatchRegroupSOCPlusPlus', 'SOCPlusPlusOfficialHead',
    'KEY_RULES', 'SOCPP_KEY_RULES',
    'OFFICIAL_LAYOUTS',
    'detect_official_layout', 'KNOWN_EXTRA_KEYS', 'OfficialCheckpointError',
    'check_state_dict_against_model', 'ConversionError', 'convert_official_checkpoint',
    'convert_official_key', 'convert_official_state_dict', 'extract_official_state_dict',
    'load_official_checkpoint', 'NOT_AFFECTING_COMPUTATION', 'OfficialConfigError', 'load_official_config',
    'official_model_cfg', 'OFFICIAL_LOSS_COEFS', 'OFFICIAL_LOSS_NAMES', 'to_official_loss_name'
]
