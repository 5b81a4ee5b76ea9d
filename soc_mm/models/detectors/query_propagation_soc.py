"""QueryPropagationSOC: SOC whose frame decoder follows objects from frame to frame (not SOC's)."""
from typing import Dict, List, Optional, Union

import torch
from torch import Tensor

from soc_mm.registry import MODELS
from .soc import SOC


@MODELS.register_module()
class QueryPropagationSOC(SOC):
    """SOC that decodes the frames of a clip one after another, each frame's queries starting from the
    previous frame's decoded queries and (centre) boxes instead of the learned ones.

    A query then keeps following the same object through the clip, as in tracking-by-query models
    (MOTR, TrackFormer); SOC decodes every frame from the same learned queries, so a query may switch
    between look-alike objects from one frame to the next. Frame 0 is decoded as SOC does. No weights of
    its own: SOC checkpoints load strictly. Arguments: as ``SOC``.
    """

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Optional[Tensor],
                        reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                        valid_ratios: Tensor, num_videos: int = 1) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """As ``SOC.forward_decoder`` (inputs [(B*T), ...], B = ``num_videos``), but frame t of each video is
        decoded from frame t-1's last-layer queries and box centres.

        Returns ``hidden_states`` [L, (B*T), nq, C] and ``references`` list of L+1 [(B*T), nq, 2|4]
        (each frame's initial references, then refined by each layer).
        """
        if query.shape[0] % num_videos:
            raise ValueError(f'{type(self).__name__}: {query.shape[0]} frames do not split into {num_videos} videos')
        reg_branches = self.bbox_head.reg_branches if self.with_box_refine else None

        def frames(x: Optional[Tensor]) -> Optional[Tensor]:  # [(B*T), ...] -> [B, T, ...]
            return None if x is None else x.view(num_videos, -1, *x.shape[1:])

        query, query_pos, memory, memory_mask, reference_points, valid_ratios = map(
            frames, (query, query_pos, memory, memory_mask, reference_points, valid_ratios))
        states, refined, initial = [], [], []
        frame_query, frame_reference = query[:, 0], reference_points[:, 0]
        for t in range(memory.shape[1]):
            hidden_states, inter_references = self.decoder(
                query=frame_query, query_pos=query_pos[:, t], value=memory[:, t],
                key_padding_mask=None if memory_mask is None else memory_mask[:, t],
                reference_points=frame_reference, spatial_shapes=spatial_shapes,
                level_start_index=level_start_index, valid_ratios=valid_ratios[:, t], reg_branches=reg_branches)
            states.append(hidden_states)  # [L, B, nq, C]
            refined.append(inter_references)  # [L, B, nq, 2|4]
            initial.append(frame_reference)
            # the refined references are detached by the decoder (as between its layers)
            frame_query, frame_reference = hidden_states[-1], inter_references[-1][..., :2]
        hidden_states = torch.stack(states, 2).flatten(1, 2)
        inter_references = torch.stack(refined, 2).flatten(1, 2)
        return dict(hidden_states=hidden_states,
                    references=[torch.stack(initial, 1).flatten(0, 1), *inter_references])
