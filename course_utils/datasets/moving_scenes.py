"""Short synthetic videos whose motion is known exactly: the source of the optical-flow and DAVIS twins.

A scene is a stack of layers, back to front: a textured background that fills the frame and moves with
the camera (translation, a slight zoom and roll), then 1..K textured objects (ellipses, wobbly blobs,
convex polygons, with hard edges), each moving on its own. Each layer is a procedural texture painted on
an infinite plane, and each frame places that plane in the image by a similarity transform (scale,
rotation, offset)::

    image point p = offset_t + scale_t * R(angle_t) @ q        (q: a point of the layer's own plane)

A frame is rendered by *inverse mapping*: for every pixel p and every layer, find the plane point q that
lands there and evaluate the texture (and the object's shape) at q. Nothing is resampled from a raster, so
the truth is exact: the flow at pixel p of frame t is where its plane point q lands in frame t + 1, minus
p, for the topmost layer at p. A pixel is *occluded* when that point, in frame t + 1, is covered by a
layer in front of it or lies outside the image.

Conventions (those of ``course_utils.datasets.flow`` and ``models.warp.backward_warp``): pixel (row i,
column j) has its centre at x = j, y = i; flow is (u, v) = (dx, dy) in pixels, from frame t to t + 1.
Textures have soft (about 1.5 pixel wide) stripes, checks and dots on smooth colour noise, so that corners
exist for Lucas-Kanade and gradients for Farneback, and bilinear warping reproduces a frame closely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MovingScene:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    flow: np.ndarray  # (T-1, H, W, 2) float32, forward flow frame t -> t+1 as (u, v) = (dx, dy) in pixels
    occluded: np.ndarray  # (T-1, H, W) bool: pixels of frame t hidden in frame t+1 or leaving the image
    masks: np.ndarray  # (T, H, W) uint8 object ids: 0 background, 1..K the moving objects


# --- textures: functions of a plane point q (N, 2) -> colour (N, 3) float in [0, 255] ------------------

def _soft(distance: np.ndarray) -> np.ndarray:
    """0 -> 1 across a signed distance of about 1.5 pixels: a sharp but not aliased edge."""
    return np.clip(distance / 1.5 + 0.5, 0.0, 1.0)


class _Texture:
    """Smooth colour noise (a sum of random plane waves) plus one pattern: stripes, checks or dots."""

    def __init__(self, rng: np.random.Generator):
        n_waves = 6
        angles = rng.uniform(0, 2 * np.pi, n_waves)
        wavelengths = rng.uniform(10, 40, n_waves)
        self.waves = np.stack([np.cos(angles), np.sin(angles)]) * (2 * np.pi / wavelengths)  # (2, n)
        self.phases = rng.uniform(0, 2 * np.pi, n_waves)
        self.colours = rng.uniform(20, 235, (3, 3))  # noise low, noise high, pattern colour
        self.kind = rng.choice(["stripes", "checks", "dots"])
        angle, self.period = rng.uniform(0, np.pi), rng.uniform(6, 12)
        self.axes = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])  # (2, 2)
        self.strength = rng.uniform(0.5, 0.9)  # how much the pattern covers the noise
        for name in ("waves", "phases", "colours", "axes"):
            setattr(self, name, getattr(self, name).astype(np.float32))

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q = q.astype(np.float32)  # single precision is ample for colours, and faster
        noise = np.sin(q @ self.waves + self.phases).mean(axis=1) * 1.2 + 0.5  # about [0, 1]
        noise = np.clip(noise, 0, 1)[:, None]
        colour = self.colours[0] * (1 - noise) + self.colours[1] * noise
        a, b = (q @ self.axes).T  # coordinates along the pattern's own axes, in pixels
        k = 2 * np.pi / self.period
        if self.kind == "stripes":  # sin(k a) / k is the signed distance to the nearest edge, near the edge
            pattern = _soft(np.sin(k * a) / k)
        elif self.kind == "checks":  # soft XOR of two stripe patterns: a checkerboard, whose corners LK loves
            sa, sb = _soft(np.sin(k * a) / k), _soft(np.sin(k * b) / k)
            pattern = sa + sb - 2 * sa * sb
        else:  # dots on a square lattice, radius a third of the period
            da, db = a - self.period * np.round(a / self.period), b - self.period * np.round(b / self.period)
            pattern = _soft(self.period / 3 - np.hypot(da, db))
        pattern = self.strength * pattern[:, None]
        return colour * (1 - pattern) + self.colours[2] * pattern


# --- shapes: functions of a plane point q (N, 2) -> inside (N,) bool; the object's centre is q = 0 ------

class _Shape:
    """An ellipse, a blob (an ellipse whose outline wobbles) or a convex polygon, of about ``radius`` pixels."""

    def __init__(self, rng: np.random.Generator, radius: float):
        self.kind = rng.choice(["ellipse", "blob", "polygon"])
        self.radius = radius
        self.stretch = rng.uniform(0.55, 1.0)  # minor / major axis
        self.harmonics = [(k, rng.uniform(-0.15, 0.15), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)]
        n = int(rng.integers(3, 7))
        corners = rng.uniform(0, 2 * np.pi) + (np.arange(n) + rng.uniform(-0.25, 0.25, n)) * 2 * np.pi / n
        self.vertices = radius * rng.uniform(0.8, 1.1, (n, 1)) * np.stack([np.cos(corners), np.sin(corners)], 1)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        inside = np.zeros(len(q), bool)
        near = np.flatnonzero((q**2).sum(axis=1) < (1.5 * self.radius) ** 2)  # no shape reaches further
        inside[near] = self._inside(q[near])
        return inside

    def _inside(self, q: np.ndarray) -> np.ndarray:
        x, y = q[:, 0], q[:, 1] / self.stretch
        if self.kind == "ellipse":
            return np.hypot(x, y) < self.radius
        if self.kind == "blob":
            angle = np.arctan2(y, x)
            outline = self.radius * (1 + sum(a * np.cos(k * angle + phase) for k, a, phase in self.harmonics))
            return np.hypot(x, y) < outline
        # convex polygon, vertices counter-clockwise: inside = left of every edge (cross product > 0)
        inside = np.ones(len(q), bool)
        for start, end in zip(self.vertices, np.roll(self.vertices, -1, axis=0)):
            edge = end - start
            inside &= edge[0] * (q[:, 1] - start[1]) - edge[1] * (q[:, 0] - start[0]) > 0
        return inside


# --- motion: a similarity transform per frame ---------------------------------------------------------

class _Motion:
    """Where a layer's plane sits in frame t: ``p = offset[t] + scale[t] * R(angle[t]) @ q``."""

    def __init__(self, offset: np.ndarray, scale: np.ndarray, angle: np.ndarray):
        self.offset, self.scale, self.angle = offset, scale, angle  # (T, 2), (T,), (T,)

    def _rotation(self, t: int) -> np.ndarray:
        c, s = np.cos(self.angle[t]), np.sin(self.angle[t])
        return np.array([[c, -s], [s, c]])

    def to_plane(self, p: np.ndarray, t: int) -> np.ndarray:
        """Plane points (N, 2) of image points p (N, 2) in frame t: the inverse map."""
        return (p - self.offset[t]) @ self._rotation(t) / self.scale[t]  # row vectors: @ R is R^T, the inverse

    def to_image(self, q: np.ndarray, t: int) -> np.ndarray:
        """Image points (N, 2) in frame t of plane points q (N, 2)."""
        return self.offset[t] + self.scale[t] * q @ self._rotation(t).T


def _object_motion(rng: np.random.Generator, n_frames: int, height: int, width: int,
                   max_speed: float) -> _Motion:
    """A start inside the frame, a roughly constant velocity (up to ``max_speed`` pixels per frame) bent into
    a gentle curve, that keeps the centre well inside the frame; a slow spin and a slight change of size."""
    size = np.array([width, height], float)
    start = rng.uniform(0.2, 0.8, 2) * size
    direction = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(0.3, 1.0) * max_speed * np.array([np.cos(direction), np.sin(direction)])
    end = np.clip(start + velocity * (n_frames - 1), 0.1 * size, 0.9 * size)
    t = np.arange(n_frames, dtype=float)[:, None]
    span = max(n_frames - 1, 1)
    bend = rng.uniform(-0.3, 0.3) * max_speed * np.array([-velocity[1], velocity[0]]) / (np.hypot(*velocity) + 1e-9)
    offset = start + (end - start) * t / span + bend * t * (t - span) / span  # the bend is 0 at both ends
    angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.04, 0.04) * t[:, 0]
    scale = np.exp(rng.uniform(-0.015, 0.015) * t[:, 0])
    return _Motion(offset, scale, angle)


def _camera_motion(rng: np.random.Generator, n_frames: int, height: int, width: int,
                   max_speed: float) -> _Motion:
    """The background: the camera pans (0.1 to 0.5 ``max_speed`` pixels per frame), zooms and rolls a little,
    about the centre of the image."""
    t = np.arange(n_frames, dtype=float)
    direction = rng.uniform(0, 2 * np.pi)
    pan = rng.uniform(0.1, 0.5) * max_speed * np.array([np.cos(direction), np.sin(direction)])
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre + pan * t[:, None]
    scale = np.exp(rng.uniform(-0.01, 0.01) * t)
    angle = rng.uniform(-0.005, 0.005) * t
    return _Motion(offset, scale, angle)


# --- the scene ----------------------------------------------------------------------------------------

def make_scene(rng: np.random.Generator, n_frames: int, height: int, width: int, n_objects: int,
               max_speed: float = 3.0) -> MovingScene:
    """A synthetic video of ``n_frames`` frames (height x width) with ``n_objects`` moving objects (>= 1)
    over a moving background, and its exact forward flow, occlusions and object masks.

    Object k (mask id k) sits at a random depth: the depth order is random, so a higher id is not always in
    front. Objects move up to about ``max_speed`` pixels per frame (their spin and the camera add a little),
    and each one is clearly visible in the first frame (at least 30 % of its area in the frame is unhidden, and
    the frame shows a good part of it; the objects are drawn again, up to 20 times, until they are).
    Mild Gaussian noise (sigma 2 grey levels) is added to the frames, independently per frame.
    Deterministic for a given state of ``rng``.
    """
    if n_frames < 2 or n_objects < 1 or height < 8 or width < 8:
        raise ValueError(f"need n_frames >= 2, n_objects >= 1 and a frame of at least 8x8 pixels, got "
                         f"n_frames={n_frames}, n_objects={n_objects}, {height}x{width}")
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)  # (N, 2) as (x, y)

    background = (_Texture(rng), None, _camera_motion(rng, n_frames, height, width, max_speed))
    for _ in range(20):  # draw the objects again until each is visible in the first frame
        objects = []
        for _ in range(n_objects):
            radius = rng.uniform(0.12, 0.3) * min(height, width)
            objects.append((_Texture(rng), _Shape(rng, radius), _object_motion(rng, n_frames, height, width,
                                                                               max_speed)))
        depth = rng.permutation(n_objects)  # depth[i]: the object (0-based) at position i, back to front
        layers = [background] + [objects[i] for i in depth]
        ids = np.concatenate([[0], depth + 1]).astype(np.uint8)  # mask id of each layer
        covers = [np.ones(len(pixels), bool)] + [shape(motion.to_plane(pixels, 0)) for _, shape, motion in layers[1:]]
        top = np.max(np.arange(len(layers))[:, None] * np.stack(covers), axis=0)  # the last layer that covers
        visible = np.bincount(top, minlength=len(layers))
        if all(visible[i] >= max(0.3 * covers[i].sum(), 0.15 * np.pi * shape.radius**2 * shape.stretch)
               for i, (_, shape, _) in enumerate(layers) if i > 0):
            break

    frames = np.empty((n_frames, height, width, 3), np.uint8)
    masks = np.empty((n_frames, height, width), np.uint8)
    flow = np.empty((n_frames - 1, height, width, 2), np.float32)
    occluded = np.empty((n_frames - 1, height, width), bool)
    for t in range(n_frames):
        planes = [motion.to_plane(pixels, t) for _, _, motion in layers]
        covers = [np.ones(len(pixels), bool)] + [shape(q) for (_, shape, _), q in zip(layers[1:], planes[1:])]
        top = np.max(np.arange(len(layers))[:, None] * np.stack(covers), axis=0)
        image = np.empty((len(pixels), 3), np.float32)
        for index, ((texture, _, _), q) in enumerate(zip(layers, planes)):
            here = top == index
            image[here] = texture(q[here])
        image += rng.normal(0, 2.0, image.shape).astype(np.float32)
        frames[t] = np.clip(np.round(image), 0, 255).reshape(height, width, 3).astype(np.uint8)
        masks[t] = ids[top].reshape(height, width)
        if t == n_frames - 1:
            break
        # forward flow: each pixel's plane point, placed by its own layer's motion in frame t + 1
        target = np.empty_like(pixels)
        for index, (_, _, motion) in enumerate(layers):
            here = top == index
            target[here] = motion.to_image(planes[index][here], t + 1)
        flow[t] = (target - pixels).reshape(height, width, 2)
        # occluded: the point lands outside the image, or under a layer in front of its own in frame t + 1
        hidden = (target[:, 0] < 0) | (target[:, 0] > width - 1) | (target[:, 1] < 0) | (target[:, 1] > height - 1)
        for index in range(1, len(layers)):
            _, shape, motion = layers[index]
            behind = top < index
            hidden[behind] |= shape(motion.to_plane(target[behind], t + 1))
        occluded[t] = hidden.reshape(height, width)
    return MovingScene(frames=frames, flow=flow, occluded=occluded, masks=masks)
