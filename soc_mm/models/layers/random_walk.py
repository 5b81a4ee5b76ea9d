"""SOC++'s random-walk refinement of the video queries by the frame queries (no parameters)."""
import torch
from torch import Tensor


def _unit(x: Tensor) -> Tensor:
    return x / (x.norm(p=2, dim=-1, keepdim=True) + 1e-9)


def random_walk_refine(video_queries: Tensor, frame_queries: Tensor, weight: float = 0.5,
                       temperature: float = 5.0) -> Tensor:
    """Refine video queries by a random walk between them and the frame queries (SOC++, ``BMRW``).

    With ``Z`` [K, n] the softmax over the K frame queries of ``temperature * cos(frame, video)``
    and ``A = Z^T (Z / rowsum(Z))`` [n, n] the video-to-video transition through the frames, the
    refined queries are the walk's stationary mix of the video queries and the frames they gather:
    ``(1 - w) (I - w^2 A)^{-1} (x + w Z^T y)``, a linear solve (as SOC++).

    SOC++ calls ``torch.linalg.solve(M, I)`` with an unbatched identity, which torch reads as a
    batch of vectors when the batch size equals the number of video queries (a wrong [n, n] result
    instead of [N, n, n], then a shape error downstream); the identity is expanded to the batch here,
    so every size works (same numbers otherwise).

    Args:
        video_queries (Tensor): x [N, n, C] (N = decoder layers x videos).
        frame_queries (Tensor): y [N, K, C] (K = frames x frame queries of the same video).
        weight (float): w, the walk's continuation probability (SOC++: 0.5).
        temperature (float): scale of the cosine similarities before the softmax (SOC++: 5).

    Returns:
        Tensor: refined video queries [N, n, C].
    """
    if video_queries.dim() != 3 or frame_queries.dim() != 3 or video_queries.shape[0] != frame_queries.shape[0] \
            or video_queries.shape[-1] != frame_queries.shape[-1]:
        raise ValueError(f'random_walk_refine: video_queries [N, n, C] and frame_queries [N, K, C] expected, got '
                         f'{tuple(video_queries.shape)} and {tuple(frame_queries.shape)}')
    N, n, _ = video_queries.shape
    # z [N, K, n]: for each video query, a distribution over the frame queries
    z = torch.softmax(torch.einsum('nkd,ntd->nkt', _unit(frame_queries), _unit(video_queries)) * temperature, 1)
    z_rows = z / (z.sum(dim=-1, keepdim=True) + 1e-9)
    transition = torch.einsum('nkt,nkd->ntd', z, z_rows)  # [N, n, n]
    eye = torch.eye(n, dtype=video_queries.dtype, device=video_queries.device)
    inverse = torch.linalg.solve(eye - weight**2 * transition, eye.expand(N, n, n))
    gathered = weight * torch.einsum('nkt,nkd->ntd', z, frame_queries) + video_queries
    return (1 - weight) * torch.einsum('ntk,nkd->ntd', inverse, gathered)
