from .video_hungarian_assigner import VideoHungarianAssigner
from .video_match_costs import (QueryTextCost, VideoBoxL1Cost, VideoDiceCost, VideoFocalClassCost,
                                VideoGIoUCost)

__all__ = ['VideoHungarianAssigner', 'VideoDiceCost', 'VideoFocalClassCost', 'VideoBoxL1Cost',
           'VideoGIoUCost', 'QueryTextCost']
