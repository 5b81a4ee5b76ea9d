from .video_swin import VideoSwinTransformer

__all__ = ['VideoSwinTransformer']
