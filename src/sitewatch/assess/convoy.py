"""Convoys found geometrically: chains of vehicles nose to tail along a common axis.

Two vehicles are *linked* when their centres are within ``gap_m`` metres, their length axes
differ by at most ``angle_deg``, and the line joining their centres runs along both axes (within
``angle_deg``). Vehicles parked side by side (joining line across their axes) are not linked. A
convoy is a connected chain of linked vehicles; linking is local, so a chain may follow a gently
curving road.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def _axis_angle(a_deg: np.ndarray | float, b_deg: np.ndarray | float) -> np.ndarray:
    """Smallest angle between two undirected axes, degrees in [0, 90]."""
    d = np.abs((np.asarray(a_deg) - np.asarray(b_deg)) % 180.0)
    return np.minimum(d, 180.0 - d)


def find_convoys(
    xy_m: np.ndarray,
    heading_deg: np.ndarray,
    *,
    gap_m: float = 30.0,
    angle_deg: float = 20.0,
    min_length: int = 5,
) -> list[list[int]]:
    """Chains of vehicles aligned nose to tail.

    Args:
        xy_m: vehicle centres, shape (N, 2), metres in a local frame with x right and y down
            (pixel axes scaled by the GSD).
        heading_deg: length-axis directions, degrees clockwise from the frame's up (-y), any range.
        gap_m: largest centre-to-centre distance between neighbours in a chain, metres.
        angle_deg: tolerance on heading differences and on the joining line, degrees.
        min_length: shortest chain returned (vehicles).

    Returns:
        Index lists of the chains (each ordered along the chain axis), longest first.
    """
    xy = np.asarray(xy_m, dtype=float).reshape(-1, 2)
    hd = np.asarray(heading_deg, dtype=float).reshape(-1)
    n = len(xy)
    if n == 0:
        return []
    pairs = cKDTree(xy).query_pairs(r=gap_m, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        d = xy[j] - xy[i]
        # Direction of the joining line, degrees clockwise from up (-y): atan2(dx, -dy).
        join = np.degrees(np.arctan2(d[:, 0], -d[:, 1]))
        ok = (
            (_axis_angle(hd[i], hd[j]) <= angle_deg)
            & (_axis_angle(join, hd[i]) <= angle_deg)
            & (_axis_angle(join, hd[j]) <= angle_deg)
        )
        i, j = i[ok], j[ok]
    else:
        i = j = np.zeros(0, dtype=int)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    chains = []
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        if len(members) < min_length:
            continue
        # Order along the principal axis of the chain.
        pts = xy[members] - xy[members].mean(axis=0)
        axis = np.linalg.svd(pts, full_matrices=False)[2][0] if len(members) > 1 else np.array([1.0, 0.0])
        chains.append([int(k) for k in members[np.argsort(pts @ axis)]])
    return sorted(chains, key=len, reverse=True)
