"""Our SOC's outputs in the official model's layout (for comparing with its golden fixtures)."""
from typing import Dict, Sequence

from torch import Tensor, nn

from soc_mm.structures.batch_metainfo import img_shapes_tensor


def official_outputs(model: nn.Module, inputs: Tensor, data_samples: Sequence) -> Dict:
    """The official model's output dict for a batch of B clips of T frames.

    Args:
        model (nn.Module): a ``soc_mm`` ``SOC``; train or eval mode decides the layout, as in the
            official code.
        inputs (Tensor): normalised, padded clips [B, T, 3, Hp, Wp].
        data_samples (list[RVOSDataSample]): metainfo ``expression``, ``img_shape`` (and optional
            ``valid_frame_idx``).

    Returns:
        dict: ``pred_masks`` [T, B, nq, h, w], ``pred_cls`` [T, B, nq, K], ``pred_boxes``
        [T, B, nq, 4], ``pred_logit`` [B, nq, C] (video queries), ``text_sentence_feature`` [B, C]
        (fused sentence feature) and ``aux_outputs`` (list of such dicts). Training mode: the last
        decoder layer is the main output, the earlier layers are in ``aux_outputs``; eval: the
        ``test_cfg.output_layer`` layer only, with the last layer's video queries, and
        ``aux_outputs`` empty (as SOC); SOC++ (video queries of every layer) in eval as in training.
    """
    head_inputs_dict = model.forward_head_inputs(inputs, data_samples)
    hidden_states, references = head_inputs_dict['hidden_states'], head_inputs_dict['references']
    video_queries = head_inputs_dict['video_queries']
    img_sizes = img_shapes_tensor(data_samples, inputs.device)
    # SOC clusters the last layer only in eval (one output layer); SOC++ every layer (all returned)
    every_layer = model.training or video_queries.shape[0] == hidden_states.shape[0]
    layers = range(hidden_states.shape[0]) if every_layer else [model.output_layer]
    outs = []
    for layer in layers:
        cls, boxes, masks = model.bbox_head.forward_single(
            hidden_states[layer], references[layer], references[layer + 1][..., :2],
            head_inputs_dict['mask_feats'], img_sizes, layer)
        outs.append(dict(pred_masks=masks.transpose(0, 1), pred_cls=cls.transpose(0, 1),
                         pred_boxes=boxes.transpose(0, 1),
                         pred_logit=video_queries[layer if every_layer else -1],
                         text_sentence_feature=head_inputs_dict['fused_sentence_feat']))
    out = outs[-1]
    out['aux_outputs'] = outs[:-1]
    return out
