"""Synthetic identity faces: a parametric, deterministic face renderer.

An :class:`Identity` is a vector of continuous appearance parameters (face shape, proportions,
colours, hair, facial hair, wrinkles) drawn by :func:`sample_identity` from distributions that
depend on the demographic attributes, so that identities overlap a lot (a raw-pixel baseline
cannot tell them apart easily) while the images of one identity stay visibly related.
:func:`render_face` draws one image of an identity with per-image nuisance (pose, scale,
translation, lighting, expression, blur, sensor noise, JPEG, background) taken from a
:class:`Nuisance`, using only the generator it is given: the same seed gives the same bytes.

Geometry. Shapes are built in the 112x112 ArcFace template frame (x right, y down, pixel
centres on integers), moved by the per-image pose, scaled to ``size`` (template coordinates
times ``size / 112``), and drawn antialiased on a canvas supersampled ``_SS`` times, whose
pixel ``X`` covers the output coordinate ``(X - (_SS - 1) / 2) / _SS``; an area downsample
brings it back to ``size``. The five landmarks (eye centres = pupil centres, nose tip, mouth
corners) are anchors of the face model: with zero nuisance they are exactly the template, and
the identity's proportions (eye spacing or mouth width relative to face width, eye height
relative to forehead and chin, nose length and width, lip thickness...) are expressed around
them. They go through the same transform as the drawing, so they lie on the drawn features.

Dense geometry. Every render also returns :class:`FaceGeometry`: the face outline, both eye
contours (with their openness), and the outer and inner lip contours, in output pixels, as
drawn (for blink cues, a face-hull mask, eye and mouth regions). Computing it draws nothing
from the generator, so stills are byte-identical with or without it.

Clips. A :class:`FaceState` given to :func:`render_face` fixes one frame's pose, expression,
eyelid closure (a blink), skin-colour gain (a pulse), background and lighting instead of
drawing them: a clip is a smooth sequence of states of one identity. Without one, a still is
drawn exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import cv2
import numpy as np

from idv.faces.align import ARCFACE_TEMPLATE_112

AGE_BANDS = ("18-29", "30-49", "50+")
SEXES = ("female", "male")
SKIN_TONES = ("I-II", "III-IV", "V-VI")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# ARCFACE_TEMPLATE_112 (in LANDMARK_NAMES order) lives in idv.faces.align, shared with real
# photos; it is imported above and stays importable from here.

_SS = 2  # supersampling factor of the drawing canvas
_FIX = 4  # cv2 fixed-point bits for sub-pixel drawing
_FIX_SCALE = float(1 << _FIX)
_MIN_SIZE = 32

# Template anchors (float64 for geometry).
_T = ARCFACE_TEMPLATE_112.astype(np.float64)
_EYE_L, _EYE_R, _NOSE, _MOUTH_L, _MOUTH_R = _T
_CX = float((_EYE_L[0] + _EYE_R[0]) / 2.0)  # facial midline
_EYE_Y = float((_EYE_L[1] + _EYE_R[1]) / 2.0)
_MOUTH_Y = float((_MOUTH_L[1] + _MOUTH_R[1]) / 2.0)
_PIVOT = np.array([_CX, 62.0])  # roll / scale pivot (template units), near the face centre

# Depth (template units, towards the camera) of each part, for the yaw approximation
# x' = cx + (x - cx) cos(yaw) + z sin(yaw): the nose moves more than the eyes, the outline
# foreshortens on the side the face turns to.
_Z_EYE, _Z_BROW, _Z_NOSE, _Z_NOSE_BASE, _Z_MOUTH, _Z_CHEEK = 14.0, 15.0, 26.0, 22.0, 17.0, 10.0
_OUTLINE_SQUEEZE = 0.18

# ----------------------------------------------------------------------------------------
# Identity parameters
# ----------------------------------------------------------------------------------------

_PARAM_NAMES = (
    # face shape / proportions (template units unless noted)
    "face_half_width",  # half width of the face at the cheekbones (sets eye spacing / mouth
    #                     width relative to the face)
    "forehead_height",  # eye line to top of the head outline (sets eye height in the face)
    "cheek_offset",  # eye line to the widest point of the face
    "chin_length",  # mouth line to chin (sets mouth height position in the face)
    "jaw_power",  # lower-face super-ellipse exponent: >2 wider, squarer jaw
    "chin_power",  # chin bluntness
    "ear_size",
    "neck_width",
    # eyes
    "eye_half_width",
    "eye_opening",  # upper-lid height
    "eye_tilt_deg",  # outer corner up
    "iris_radius",
    "iris_r",
    "iris_g",
    "iris_b",
    # brows
    "brow_gap",  # above the eye centre
    "brow_thickness",
    "brow_angle_deg",
    "brow_length",
    "brow_arch",
    "brow_r",
    "brow_g",
    "brow_b",
    # nose
    "nose_length",  # bridge top to tip
    "nose_width",  # half width at the wings
    "nostril_size",
    # mouth
    "upper_lip",
    "lower_lip",
    "mouth_curve",  # resting lip curve between the fixed corners (+ = upturned)
    "lip_r",
    "lip_g",
    "lip_b",
    # skin
    "skin_r",
    "skin_g",
    "skin_b",
    "cheek_blush",
    # hair
    "hair_style",  # 0 bald, 1 short, 2 long, 3 fringe
    "hairline",  # hairline height below the top of the head outline
    "hair_volume",
    "hair_length",  # long hair: below the eye line
    "hair_part",  # -1..1, fringe asymmetry / part side
    "hair_phase",  # fringe jag phase
    "hair_r",
    "hair_g",
    "hair_b",
    # facial hair and age
    "facial_hair",  # 0 none, 1 stubble, 2 beard
    "facial_hair_strength",
    "wrinkles",  # 0..1
)
_P = {name: i for i, name in enumerate(_PARAM_NAMES)}
#: Index of each appearance parameter in Identity.params (read-only use).
PARAM_INDEX: Mapping[str, int] = _P
N_PARAMS = len(_PARAM_NAMES)

_HAIR_BALD, _HAIR_SHORT, _HAIR_LONG, _HAIR_FRINGE = 0, 1, 2, 3

_SKIN_BASE = {  # RGB mean per Fitzpatrick group
    "I-II": (234.0, 196.0, 170.0),
    "III-IV": (200.0, 150.0, 112.0),
    "V-VI": (128.0, 88.0, 64.0),
}
_HAIR_PALETTE = np.array(
    [
        (24, 20, 18),  # black
        (58, 40, 28),  # dark brown
        (100, 68, 44),  # brown
        (150, 112, 72),  # light brown
        (206, 172, 112),  # blond
        (150, 72, 38),  # auburn / red
    ],
    dtype=np.float64,
)
_HAIR_PROBS = {
    "I-II": (0.08, 0.24, 0.26, 0.16, 0.18, 0.08),
    "III-IV": (0.34, 0.38, 0.18, 0.06, 0.03, 0.01),
    "V-VI": (0.70, 0.26, 0.04, 0.0, 0.0, 0.0),
}
_GREY_HAIR = np.array([(150, 148, 144), (214, 212, 206)], dtype=np.float64)
_GREY_PROB = {"18-29": 0.02, "30-49": 0.15, "50+": 0.6}
_IRIS_PALETTE = np.array(
    [
        (58, 36, 22),  # dark brown
        (96, 62, 34),  # brown
        (116, 96, 50),  # hazel
        (76, 106, 68),  # green
        (74, 114, 162),  # blue
        (112, 124, 134),  # grey
    ],
    dtype=np.float64,
)
_IRIS_PROBS = {
    "I-II": (0.10, 0.20, 0.18, 0.14, 0.28, 0.10),
    "III-IV": (0.40, 0.36, 0.14, 0.05, 0.03, 0.02),
    "V-VI": (0.78, 0.20, 0.02, 0.0, 0.0, 0.0),
}
_WRINKLES = {"18-29": (0.0, 0.12), "30-49": (0.15, 0.5), "50+": (0.55, 1.0)}
_LIP_AGE = {"18-29": 1.0, "30-49": 0.92, "50+": 0.78}


@dataclass(frozen=True)
class Identity:
    """One synthetic person: demographic attributes plus a float32 appearance vector."""

    subject_id: str
    age_band: str
    sex: str
    skin_tone: str
    params: np.ndarray  # float32 (N_PARAMS,), see _PARAM_NAMES

    def __post_init__(self) -> None:
        if self.age_band not in AGE_BANDS:
            raise ValueError(f"age_band must be one of {AGE_BANDS}, got {self.age_band!r}")
        if self.sex not in SEXES:
            raise ValueError(f"sex must be one of {SEXES}, got {self.sex!r}")
        if self.skin_tone not in SKIN_TONES:
            raise ValueError(f"skin_tone must be one of {SKIN_TONES}, got {self.skin_tone!r}")
        params = np.asarray(self.params)
        if params.shape != (N_PARAMS,) or not np.all(np.isfinite(params)):
            raise ValueError(
                f"params must be a finite vector of {N_PARAMS} values, got shape {params.shape}"
            )
        params = params.astype(np.float32, copy=True)
        params.setflags(write=False)
        object.__setattr__(self, "params", params)

    def demographics(self) -> dict[str, str]:
        """The manifest's demographic columns of this person (every corpus writes them)."""
        return {"age_band": self.age_band, "sex": self.sex, "skin_tone": self.skin_tone}

    def __eq__(self, other: object) -> bool:  # the generated one cannot compare arrays
        if not isinstance(other, Identity):
            return NotImplemented
        return (self.subject_id, self.age_band, self.sex, self.skin_tone) == (
            other.subject_id,
            other.age_band,
            other.sex,
            other.skin_tone,
        ) and bool(np.array_equal(self.params, other.params))

    def __hash__(self) -> int:
        return hash(
            (self.subject_id, self.age_band, self.sex, self.skin_tone, self.params.tobytes())
        )


def _as_range(name: str, value, integer: bool = False) -> tuple:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"Nuisance.{name} must be a (low, high) pair, got {value!r}") from None
    lo, hi = (int(lo), int(hi)) if integer else (float(lo), float(hi))
    if lo > hi:
        raise ValueError(f"Nuisance.{name} must have low <= high, got {value!r}")
    return (lo, hi)


@dataclass(frozen=True)
class Nuisance:
    """Per-image nuisance ranges (``Nuisance(**cfg)`` from a Hydra dict; lists become tuples).

    Scalars are maximum amounts (drawn uniformly in [-max, max] or [0, max]); pairs are
    (low, high) ranges drawn uniformly. Lengths (``shift_px``, ``blur_sigma``) are pixels of
    a 112x112 image and scale with the rendered size, like the face. All zeros (scale (1, 1),
    jpeg (q, q)) gives a canonical frontal image with the landmarks on the ArcFace template.
    """

    yaw_deg: float = 15.0  # max |yaw|: horizontal shift of inner features + foreshortening
    roll_deg: float = 10.0  # max |in-plane rotation|
    scale: tuple[float, float] = (0.9, 1.1)
    shift_px: float = 4.0  # max |translation| per axis, pixels at size 112
    lighting: float = 0.35  # max strength of a linear lighting gradient (and exposure/tint)
    expression: float = 1.0  # smile, mouth opening, brow raise, eye openness
    blur_sigma: tuple[float, float] = (0.0, 1.0)  # Gaussian blur sigma, pixels at size 112
    noise_sigma: tuple[float, float] = (1.0, 6.0)  # Gaussian sensor noise, 8-bit levels
    jpeg_quality: tuple[int, int] = (60, 95)
    background: float = 1.0  # 0 plain grey .. 1 random colour, gradient and clutter

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("scale", "blur_sigma", "noise_sigma", "jpeg_quality"):
                value = _as_range(f.name, value, integer=f.name == "jpeg_quality")
                if value[0] < 0:
                    raise ValueError(f"Nuisance.{f.name} must be >= 0, got {value!r}")
            else:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"Nuisance.{f.name} must be a number, got {value!r}") from None
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"Nuisance.{f.name} must be finite and >= 0, got {value!r}")
            object.__setattr__(self, f.name, value)
        if self.scale[0] <= 0:
            raise ValueError(f"Nuisance.scale must be > 0, got {self.scale!r}")
        if self.jpeg_quality[0] < 1 or self.jpeg_quality[1] > 100:
            raise ValueError(f"Nuisance.jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")
        if self.yaw_deg >= 60:
            raise ValueError(f"Nuisance.yaw_deg must be < 60 (frontal model), got {self.yaw_deg}")
        if self.background > 1 or self.expression > 1.5:
            raise ValueError("Nuisance.background must be <= 1 and Nuisance.expression <= 1.5")


@dataclass(frozen=True)
class FaceGeometry:
    """Dense contours of one render, float32 (x, y) output pixels, as drawn.

    `face_outline` (34, 2): the closed face outline (jaw, cheeks, forehead). `left_eye` /
    `right_eye` (28, 2): closed eye contours, the upper lid from one corner to the other,
    then the lower lid back ('left' = smaller x, as the landmarks). `outer_lips` /
    `inner_lips` (30, 2): the lips' outline and the parting line, each from the left mouth
    corner along the upper edge to the right corner (index 14), then along the lower edge
    back (the halves of `inner_lips` meet when the mouth is closed). `eye_openness` (2,):
    each eye's opening over its width (0 = closed), the eye aspect ratio blinks show in.
    """

    face_outline: np.ndarray
    left_eye: np.ndarray
    right_eye: np.ndarray
    outer_lips: np.ndarray
    inner_lips: np.ndarray
    eye_openness: np.ndarray

    def contours(self) -> dict[str, np.ndarray]:
        return {
            name: getattr(self, name)
            for name in ("face_outline", "left_eye", "right_eye", "outer_lips", "inner_lips")
        }


@dataclass(frozen=True)
class FaceRender:
    """A rendered image with its landmarks and dense geometry as drawn, and the JPEG quality
    it went through."""

    image: np.ndarray  # (size, size, 3) uint8 RGB
    landmarks: np.ndarray  # (5, 2) float32 (x, y) pixels, LANDMARK_NAMES order
    jpeg_quality: int
    geometry: FaceGeometry


@dataclass(frozen=True)
class FaceState:
    """One frame of a clip: what `render_face` would otherwise draw for a still.

    Pose (`yaw_deg`, `roll_deg`, `scale`, `shift_px` at size 112), expression (`smile`,
    `mouth_open`, `brow_raise`, `eye_open` in [-1.5, 1.5], as a still's draws), `blink` (0 =
    lids at rest .. 1 = closed), `skin_gain` (RGB multipliers of the skin colour: a pulse),
    the background (`background_seed`: the same seed draws the same background), lighting
    (`light` gradient strength, `light_angle` radians, exposure `gain`, RGB `tint`) and the
    camera (`blur_sigma` px at 112; `noise_sigma`, `jpeg_quality`: None draws them from the
    frame's generator, as for a still)."""

    yaw_deg: float = 0.0
    roll_deg: float = 0.0
    scale: float = 1.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    smile: float = 0.0
    mouth_open: float = 0.0
    brow_raise: float = 0.0
    eye_open: float = 0.0
    blink: float = 0.0
    skin_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    background_seed: int = 0
    light: float = 0.0
    light_angle: float = 0.0
    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur_sigma: float = 0.0
    noise_sigma: float | None = None
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.blink <= 1.0:
            raise ValueError(f"FaceState.blink must lie in [0, 1], got {self.blink}")
        if abs(self.yaw_deg) >= 60:
            raise ValueError(f"FaceState.yaw_deg must be < 60 (frontal model), got {self.yaw_deg}")
        if self.scale <= 0:
            raise ValueError(f"FaceState.scale must be > 0, got {self.scale}")


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------


def sample_identity(
    rng: np.random.Generator,
    subject_id: str,
    *,
    age_band: str | None = None,
    sex: str | None = None,
    skin_tone: str | None = None,
) -> Identity:
    """Draw one identity. Demographics are uniform unless given (keyword-only overrides)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not isinstance(subject_id, str) or not subject_id:
        raise ValueError("subject_id must be a non-empty string")
    # Always draw the three, so overriding one does not shift the rest of the stream.
    draws = rng.integers(0, [len(AGE_BANDS), len(SEXES), len(SKIN_TONES)])
    age_band = AGE_BANDS[draws[0]] if age_band is None else age_band
    sex = SEXES[draws[1]] if sex is None else sex
    skin_tone = SKIN_TONES[draws[2]] if skin_tone is None else skin_tone
    for name, value, allowed in (
        ("age_band", age_band, AGE_BANDS),
        ("sex", sex, SEXES),
        ("skin_tone", skin_tone, SKIN_TONES),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")

    male = sex == "male"
    age = AGE_BANDS.index(age_band)  # 0, 1, 2
    p = np.zeros(N_PARAMS, dtype=np.float64)

    def n(mean: float, sd: float, lo: float, hi: float) -> float:
        return float(np.clip(rng.normal(mean, sd), lo, hi))

    p[_P["face_half_width"]] = n(35.5 + (1.6 if male else 0.0) + 0.4 * age, 2.0, 30.0, 42.0)
    p[_P["forehead_height"]] = n(39.0 + (1.0 if male else 0.0), 2.5, 32.0, 46.0)
    p[_P["cheek_offset"]] = n(5.0, 2.0, 0.0, 10.0)
    p[_P["chin_length"]] = n(14.0 + (1.2 if male else 0.0), 1.6, 10.0, 18.5)
    p[_P["jaw_power"]] = n(2.3 + (0.7 if male else 0.0) + 0.15 * age, 0.35, 1.7, 4.0)
    p[_P["chin_power"]] = n(1.9 + (0.3 if male else 0.0), 0.25, 1.4, 2.8)
    p[_P["ear_size"]] = n(1.0 + 0.05 * age, 0.1, 0.75, 1.3)
    p[_P["neck_width"]] = n(19.0 + (3.0 if male else 0.0), 1.5, 15.0, 26.0)

    p[_P["eye_half_width"]] = n(6.0, 0.5, 4.8, 7.3)
    p[_P["eye_opening"]] = n(3.0 - 0.15 * age, 0.35, 2.2, 4.0)
    p[_P["eye_tilt_deg"]] = n(3.0, 3.5, -5.0, 11.0)
    p[_P["iris_radius"]] = n(2.9, 0.22, 2.4, 3.4)
    iris = _IRIS_PALETTE[rng.choice(len(_IRIS_PALETTE), p=_IRIS_PROBS[skin_tone])]
    iris = np.clip(iris * rng.normal(1.0, 0.1) + rng.normal(0.0, 8.0, 3), 20, 200)
    p[_P["iris_r"] : _P["iris_b"] + 1] = iris

    p[_P["brow_gap"]] = n(9.5, 1.1, 7.5, 12.5)
    p[_P["brow_thickness"]] = n(2.2 + (0.8 if male else 0.0), 0.45, 1.2, 4.0)
    p[_P["brow_angle_deg"]] = n(-2.0 if male else 4.0, 4.0, -10.0, 14.0)
    p[_P["brow_length"]] = n(16.0, 1.4, 12.5, 19.5)
    p[_P["brow_arch"]] = n(1.2 if male else 2.2, 0.7, 0.0, 4.0)

    p[_P["nose_length"]] = n(17.0 + (1.0 if male else 0.0), 1.8, 12.0, 21.5)
    p[_P["nose_width"]] = n(
        6.0 + (0.5 if male else 0.0) + 0.6 * SKIN_TONES.index(skin_tone), 0.7, 4.3, 9.0
    )
    p[_P["nostril_size"]] = n(1.0, 0.15, 0.65, 1.4)

    lip_age = _LIP_AGE[age_band]
    p[_P["upper_lip"]] = n((2.4 - (0.3 if male else 0.0)) * lip_age, 0.4, 0.9, 3.8)
    p[_P["lower_lip"]] = n((3.4 - (0.3 if male else 0.0)) * lip_age, 0.5, 1.4, 5.0)
    p[_P["mouth_curve"]] = n(0.2, 0.6, -1.2, 1.6)

    skin = np.array(_SKIN_BASE[skin_tone]) * rng.normal(1.0, 0.07) + rng.normal(0.0, 6.0, 3)
    skin = np.clip(skin, 40, 250)
    p[_P["skin_r"] : _P["skin_b"] + 1] = skin
    p[_P["cheek_blush"]] = n(0.25 if male else 0.45, 0.2, 0.0, 1.0)
    lip = skin * np.array([0.86, 0.60, 0.62]) + np.array([22.0, 4.0, 8.0])
    lip = lip * rng.normal(1.0, 0.06) + rng.normal(0.0, 6.0, 3)
    if not male:
        lip = lip + np.array([rng.uniform(0.0, 25.0), -5.0, 0.0])
    p[_P["lip_r"] : _P["lip_b"] + 1] = np.clip(lip, 25, 245)

    # Hair.
    if male:
        bald = (0.04, 0.14, 0.30)[age]
        style_probs = [bald, 0.66 - bald / 2, 0.08, 0.26 - bald / 2]
    else:
        style_probs = [0.01, 0.20, 0.57, 0.22]
    p[_P["hair_style"]] = rng.choice(4, p=np.asarray(style_probs) / np.sum(style_probs))
    p[_P["hairline"]] = n(11.0 + (1.5 if male else 0.0) + 1.2 * age, 2.5, 5.0, 19.0)
    p[_P["hair_volume"]] = n(3.5 if male else 5.0, 1.3, 1.0, 8.0)
    p[_P["hair_length"]] = n(55.0, 14.0, 28.0, 90.0)
    p[_P["hair_part"]] = rng.uniform(-1.0, 1.0)
    p[_P["hair_phase"]] = rng.uniform(0.0, 2.0 * math.pi)
    hair = _HAIR_PALETTE[rng.choice(len(_HAIR_PALETTE), p=_HAIR_PROBS[skin_tone])]
    hair = hair * rng.normal(1.0, 0.12) + rng.normal(0.0, 6.0, 3)
    grey = rng.random() < _GREY_PROB[age_band]
    grey_mix = rng.uniform(0.5, 1.0)
    if grey:
        hair = (1 - grey_mix) * hair + grey_mix * _GREY_HAIR[rng.integers(0, 2)]
    hair = np.clip(hair, 10, 235)
    p[_P["hair_r"] : _P["hair_b"] + 1] = hair
    brow = hair * 0.75 if not grey else hair * 0.45 + 20.0
    brow = np.minimum(brow, skin * 0.55)  # brows stay darker than the skin
    p[_P["brow_r"] : _P["brow_b"] + 1] = np.clip(brow, 8, 200)

    fh = rng.choice(3, p=(0.55, 0.27, 0.18)) if male else 0
    p[_P["facial_hair"]] = fh
    p[_P["facial_hair_strength"]] = rng.uniform(0.15, 0.35) if fh == 1 else rng.uniform(0.55, 0.9)
    p[_P["wrinkles"]] = rng.uniform(*_WRINKLES[age_band])
    return Identity(subject_id, age_band, sex, skin_tone, p.astype(np.float32))


# ----------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------


class _Geom:
    """Template coordinates (+ depth) -> supersampled canvas coordinates for one image."""

    def __init__(self, size: int, yaw: float, roll: float, scale: float, shift: np.ndarray):
        self.k = size / 112.0
        self.cy, self.sy = math.cos(yaw), math.sin(yaw)
        c, s = math.cos(roll), math.sin(roll)
        # Output pixels: p_out = k * (scale * R @ (p_t - pivot) + pivot + shift).
        rot = np.array([[c, -s], [s, c]]) * scale
        a = rot * self.k
        b = self.k * (_PIVOT - rot @ _PIVOT + shift)
        # Canvas: X = SS * p_out + (SS - 1) / 2.
        self.a = a * _SS
        self.b = b * _SS + (_SS - 1) / 2.0
        self.px = self.k * scale * _SS  # canvas pixels per template unit

    def yaw_x(self, x: np.ndarray, z) -> np.ndarray:
        return _CX + (x - _CX) * self.cy + z * self.sy

    def canvas(self, pts: np.ndarray, z=0.0) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64)
        x = self.yaw_x(pts[..., 0], z)
        xy = np.stack([x, pts[..., 1]], axis=-1)
        return xy @ self.a.T + self.b

    def outline(self, pts: np.ndarray) -> np.ndarray:
        """Face / head outline: foreshortened on the side the face turns to."""
        dx = pts[..., 0] - _CX
        return self.canvas(pts, z=-_OUTLINE_SQUEEZE * np.abs(dx) + 3.0)

    def to_output(self, canvas_pts: np.ndarray) -> np.ndarray:
        return (canvas_pts - (_SS - 1) / 2.0) / _SS


def _fix(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _FIX_SCALE).astype(np.int32)


def _fill(img: np.ndarray, pts: np.ndarray, color) -> None:
    cv2.fillPoly(img, [_fix(pts)], _color(color), cv2.LINE_AA, _FIX)


def _line(img: np.ndarray, pts: np.ndarray, color, thickness: float) -> None:
    t = max(1, round(thickness))
    cv2.polylines(img, [_fix(pts)], False, _color(color), t, cv2.LINE_AA, _FIX)


def _color(c) -> tuple[float, float, float]:
    c = np.clip(np.asarray(c, dtype=np.float64), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


_UNIT = np.linspace(0.0, 2.0 * math.pi, 28, endpoint=False)
_COS, _SIN = np.cos(_UNIT), np.sin(_UNIT)


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle_deg: float = 0.0) -> np.ndarray:
    x, y = ax * _COS, ay * _SIN
    if angle_deg:
        t = math.radians(angle_deg)
        c, s = math.cos(t), math.sin(t)
        x, y = c * x - s * y, s * x + c * y
    return np.stack([cx + x, cy + y], axis=-1)


def _rotate(pts: np.ndarray, centre, angle_deg: float) -> np.ndarray:
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    d = pts - centre
    return np.stack(
        [centre[0] + c * d[:, 0] - s * d[:, 1], centre[1] + s * d[:, 0] + c * d[:, 1]], 1
    )


_V = np.linspace(0.0, 1.0, 18)


def _face_outline(p: np.ndarray) -> tuple[np.ndarray, dict]:
    """Closed face outline (template units), clockwise from the top, and key heights."""
    a = p[_P["face_half_width"]]
    y_top = _EYE_Y - p[_P["forehead_height"]]
    y_c = _EYE_Y + p[_P["cheek_offset"]]
    y_chin = _MOUTH_Y + p[_P["chin_length"]]
    # Upper half: ellipse, slightly squarish; lower half: super-ellipse jaw and chin.
    u = _V[::-1]  # 1 at top .. 0 at the widest line
    w_up = a * np.power(np.clip(1.0 - u**2.3, 0, 1), 1 / 2.3)
    y_up = y_c - u * (y_c - y_top)
    v = _V[1:]
    jp, cp = p[_P["jaw_power"]], p[_P["chin_power"]]
    w_lo = a * np.power(np.clip(1.0 - v**jp, 0, 1), 1 / cp)
    y_lo = y_c + v * (y_chin - y_c)
    w = np.concatenate([w_up, w_lo])
    y = np.concatenate([y_up, y_lo])
    right = np.stack([_CX + w, y], 1)
    left = np.stack([_CX - w, y], 1)[::-1]
    outline = np.concatenate([right, left[1:-1]])
    return outline, {"a": a, "y_top": y_top, "y_c": y_c, "y_chin": y_chin, "w": w, "y": y}


def _draw_background(canvas: np.ndarray, rng: np.random.Generator, amount: float) -> None:
    n = canvas.shape[0]
    base = np.array([150.0, 150.0, 150.0])
    c0 = base + amount * (rng.uniform(20, 235, 3) - base)
    c1 = base + amount * (rng.uniform(20, 235, 3) - base)
    grad_strength = amount * rng.uniform(0.0, 1.0)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    n_blobs = rng.poisson(4.0 * amount) if amount > 0 else 0
    blobs = rng.uniform(0.0, 1.0, (n_blobs, 8))
    if grad_strength > 0:  # linear ramp: exact under bilinear upsampling of a coarse grid
        t = np.linspace(-0.5, 0.5, 16)
        ramp = (math.cos(phi) * t[None, :] + math.sin(phi) * t[:, None]) * grad_strength + 0.5
        coarse = np.clip(c0 + (c1 - c0) * ramp[..., None], 0, 255).astype(np.float32)
        up = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_LINEAR)
        canvas[:] = np.rint(up).astype(np.uint8)
    else:
        canvas[:] = np.round(c0).astype(np.uint8)
    for b in blobs:
        colour = 20 + 215 * b[5:8]
        if b[4] < 0.5:
            pts = _ellipse(
                b[0] * n, b[1] * n, (0.05 + 0.2 * b[2]) * n, (0.05 + 0.2 * b[3]) * n, 90 * b[4]
            )
        else:
            cx, cy, hw, hh = b[0] * n, b[1] * n, (0.04 + 0.25 * b[2]) * n, (0.04 + 0.25 * b[3]) * n
            pts = np.array(
                [[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]]
            )
        _fill(canvas, pts, colour)


def render_face(
    identity: Identity,
    rng: np.random.Generator,
    size: int = 112,
    nuisance: Nuisance | None = None,
    state: FaceState | None = None,
) -> FaceRender:
    """Render one ``size`` x ``size`` RGB image of ``identity`` with nuisance drawn from ``rng``
    (a still), or posed as ``state`` says (a frame of a clip; ``nuisance`` then only sets the
    background's amount and the ranges of what ``state`` leaves to ``rng``)."""
    if not isinstance(identity, Identity):
        raise TypeError(f"identity must be an Identity, got {type(identity).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    size = int(size)
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE} pixels, got {size}")
    if nuisance is None:
        nuisance = Nuisance()
    elif isinstance(nuisance, Mapping):  # e.g. a Hydra config node
        nuisance = Nuisance(**nuisance)
    elif not isinstance(nuisance, Nuisance):
        raise TypeError(
            f"nuisance must be a Nuisance, a mapping or None, got {type(nuisance).__name__}"
        )
    nz = nuisance
    p = identity.params.astype(np.float64)

    # ---- per-image draws (fixed order) -----------------------------------------------
    if state is None:
        yaw = math.radians(rng.uniform(-1.0, 1.0) * nz.yaw_deg)
        roll = math.radians(rng.uniform(-1.0, 1.0) * nz.roll_deg)
        scale = rng.uniform(*nz.scale)
        shift = rng.uniform(-1.0, 1.0, 2) * nz.shift_px
        smile, mouth_open, brow_raise, eye_open = rng.uniform(-1.0, 1.0, 4) * nz.expression
    else:
        yaw, roll = math.radians(state.yaw_deg), math.radians(state.roll_deg)
        scale, shift = state.scale, np.asarray(state.shift_px, dtype=np.float64)
        smile, mouth_open = state.smile, state.mouth_open
        brow_raise, eye_open = state.brow_raise, state.eye_open
    mouth_open = max(0.0, mouth_open)
    geom = _Geom(size, yaw, roll, scale, shift)

    n = size * _SS
    canvas = np.empty((n, n, 3), dtype=np.uint8)
    background_rng = rng if state is None else np.random.default_rng(state.background_seed)
    _draw_background(canvas, background_rng, nz.background)

    skin = p[_P["skin_r"] : _P["skin_b"] + 1]
    if state is not None:
        skin = skin * np.asarray(state.skin_gain, dtype=np.float64)
    hair = p[_P["hair_r"] : _P["hair_b"] + 1]
    brow_c = p[_P["brow_r"] : _P["brow_b"] + 1]
    lip_c = p[_P["lip_r"] : _P["lip_b"] + 1]
    iris_c = p[_P["iris_r"] : _P["iris_b"] + 1]
    px = geom.px
    style = round(p[_P["hair_style"]])

    outline, fo = _face_outline(p)
    a, y_top, y_c, y_chin = fo["a"], fo["y_top"], fo["y_c"], fo["y_chin"]
    vol = p[_P["hair_volume"]]

    # ---- hair behind the head, neck, ears -----------------------------------------------
    skull_a, skull_top = a + vol, y_top - vol
    if style == _HAIR_LONG:
        y_end = _EYE_Y + p[_P["hair_length"]]
        flare = 4.0 + 0.6 * vol
        t = np.linspace(math.pi, 2 * math.pi, 20)
        top = np.stack([_CX + skull_a * np.cos(t), y_c + (y_c - skull_top) * np.sin(t)], 1)
        back = np.concatenate(
            [
                [[_CX - skull_a - flare, y_end], [_CX - skull_a, y_c]],
                top,
                [[_CX + skull_a, y_c], [_CX + skull_a + flare, y_end]],
            ]
        )
        _fill(canvas, geom.outline(back), hair * 0.85)
    neck_w = p[_P["neck_width"]]
    neck = np.array(
        [
            [_CX - neck_w, y_chin - 20],
            [_CX + neck_w, y_chin - 20],
            [_CX + neck_w * 1.15, 150],
            [_CX - neck_w * 1.15, 150],
        ]
    )
    _fill(canvas, geom.outline(neck), skin * 0.78)
    if style != _HAIR_LONG:
        es = p[_P["ear_size"]]
        for side in (-1.0, 1.0):
            ear = _ellipse(_CX + side * (a + 0.5), _EYE_Y + 9.0, 4.2 * es, 9.0 * es, -side * 8.0)
            _fill(canvas, geom.outline(ear), skin * 0.86)
            inner = _ellipse(_CX + side * (a + 1.5), _EYE_Y + 9.5, 1.6 * es, 5.5 * es, -side * 8.0)
            _fill(canvas, geom.outline(inner), skin * 0.72)
    if style == _HAIR_BALD:  # fringe of hair around the back of the head
        ring = np.array(
            [
                [_CX - a - 1.5, y_c - 14],
                [_CX + a + 1.5, y_c - 14],
                [_CX + a + 1.5, y_c + 4],
                [_CX - a - 1.5, y_c + 4],
            ]
        )
        _fill(canvas, geom.outline(ring), hair * 0.9)

    # ---- face -------------------------------------------------------------------------
    face_pts = geom.outline(outline)
    _fill(canvas, face_pts, skin)
    # Soft lower-face / jaw shadow and cheeks.
    blush = p[_P["cheek_blush"]]
    for side in (-1.0, 1.0):
        cheek = _ellipse(_CX + side * (a * 0.55), _EYE_Y + 17.0, 7.0, 5.0)
        _fill(
            canvas,
            geom.canvas(cheek, _Z_CHEEK),
            skin * (1 - 0.05 * blush) + np.array([10, -4, -4]) * blush,
        )

    fh, fh_s = round(p[_P["facial_hair"]]), p[_P["facial_hair_strength"]]
    if fh > 0:
        # Facial hair: below a line from the sideburns, down the cheeks, over the upper lip.
        keep = fo["y"] > _EYE_Y + 8.0
        wv, yv = fo["w"][keep], fo["y"][keep]
        if fh == 2:  # a full beard reaches a little beyond the jaw
            wv, yv = wv + 0.8, yv + 1.2 * (yv > _MOUTH_Y)
        sides = np.concatenate([np.stack([_CX + wv, yv], 1), np.stack([_CX - wv, yv], 1)[::-1]])
        cheek_y = _MOUTH_Y - (7.0 if fh == 2 else 5.0)
        mw = abs(_MOUTH_R[0] - _MOUTH_L[0]) / 2 + 2.0
        top = np.array(
            [
                [-wv[0] + 0.5, _EYE_Y + 8.0],
                [-a * 0.62, cheek_y],
                [-mw, _NOSE[1] + 6.0],
                [-2.0, _NOSE[1] + 4.2],
                [2.0, _NOSE[1] + 4.2],
                [mw, _NOSE[1] + 6.0],
                [a * 0.62, cheek_y],
                [wv[0] - 0.5, _EYE_Y + 8.0],
            ]
        ) + np.array([_CX, 0.0])
        region = np.concatenate([top[:-1], sides[1:-1]])
        beard = (1 - fh_s) * skin + fh_s * hair * 0.8
        if fh == 1:  # stubble: soft, two tones
            _fill(canvas, geom.outline(region), (1 - 0.5 * fh_s) * skin + 0.5 * fh_s * hair * 0.8)
            region = (region - np.array([_CX, _MOUTH_Y])) * 0.9 + np.array([_CX, _MOUTH_Y + 0.8])
        _fill(canvas, geom.outline(region), beard)

    wr = p[_P["wrinkles"]]
    line_c = skin * (1.0 - 0.18 * wr)
    lw = 0.5 * px
    if wr > 0.08:  # nasolabial folds
        for side in (-1.0, 1.0):
            t = np.linspace(0.0, 1.0, 8)
            x0 = _NOSE[0] + side * (p[_P["nose_width"]] + 1.5)
            x1 = _CX + side * (abs(_MOUTH_L[0] - _CX) + 3.0 + 1.5 * smile)
            fold = np.stack(
                [
                    x0 + (x1 - x0) * t + side * 2.0 * np.sin(math.pi * t),
                    _NOSE[1] + (_MOUTH_Y + 1.5 - _NOSE[1]) * t,
                ],
                1,
            )
            _line(canvas, geom.canvas(fold, _Z_CHEEK), line_c, lw * (0.6 + 0.6 * wr))
    if wr > 0.35:  # forehead lines and crow's feet
        for i in range(1 + int(wr * 2.5)):
            y0 = _EYE_Y - p[_P["brow_gap"]] - 6.0 - 3.5 * i - brow_raise
            xs = np.linspace(_CX - 12.0, _CX + 12.0, 9)
            ys = y0 - 1.2 * np.cos((xs - _CX) / 12.0 * 1.3)
            _line(canvas, geom.canvas(np.stack([xs, ys], 1), _Z_BROW), line_c, lw)
        for side, eye in ((-1.0, _EYE_L), (1.0, _EYE_R)):
            x0 = eye[0] + side * (p[_P["eye_half_width"]] + 1.5)
            for dy in (-1.5, 1.5):
                seg = np.array([[x0, eye[1] + dy * 0.5], [x0 + side * 3.5, eye[1] + dy * 1.6]])
                _line(canvas, geom.canvas(seg, _Z_EYE), line_c, lw)

    # ---- eyes -------------------------------------------------------------------------
    ew = p[_P["eye_half_width"]]
    iris_r = p[_P["iris_radius"]]
    pupil_r = 0.42 * iris_r
    opening = max(p[_P["eye_opening"]] * (1.0 + 0.22 * eye_open), pupil_r + 0.6)
    if state is not None and state.blink > 0:  # the lids close onto the eye line
        opening *= 1.0 - state.blink
    xs = np.linspace(-1.0, 1.0, 15)
    upper = -opening * np.power(1.0 - xs**2, 0.75)
    lower = 0.72 * opening * np.power(1.0 - xs**2, 0.9)
    eye_contours = []
    for side, eye in ((-1.0, _EYE_L), (1.0, _EYE_R)):
        tilt = -side * p[_P["eye_tilt_deg"]]  # outer corner up
        ex = eye[0] + ew * xs
        up = _rotate(np.stack([ex, eye[1] + upper], 1), eye, tilt)
        lo = _rotate(np.stack([ex, eye[1] + lower], 1), eye, tilt)
        almond = np.concatenate([up, lo[::-1][1:-1]])
        eye_contours.append(geom.canvas(almond, _Z_EYE))
        _fill(canvas, eye_contours[-1], (236, 232, 226))
        _fill(canvas, geom.canvas(_ellipse(eye[0], eye[1], iris_r, iris_r), _Z_EYE), iris_c)
        _fill(canvas, geom.canvas(_ellipse(eye[0], eye[1], pupil_r, pupil_r), _Z_EYE), (14, 12, 12))
        # Lids: skin over whatever of the iris lies outside the opening.
        cover_up = np.concatenate(
            [up, [[eye[0] + ew + 1, eye[1] - iris_r - 2], [eye[0] - ew - 1, eye[1] - iris_r - 2]]]
        )
        cover_lo = np.concatenate(
            [lo, [[eye[0] + ew + 1, eye[1] + iris_r + 2], [eye[0] - ew - 1, eye[1] + iris_r + 2]]]
        )
        _fill(canvas, geom.canvas(cover_up, _Z_EYE), skin * 0.93)
        _fill(canvas, geom.canvas(cover_lo, _Z_EYE), skin * 0.97)
        _line(canvas, geom.canvas(up, _Z_EYE), skin * 0.42, 0.8 * px)
        _line(canvas, geom.canvas(lo[2:-2], _Z_EYE), skin * 0.75, 0.4 * px)

    # ---- brows --------------------------------------------------------------------------
    bt, bl, arch = p[_P["brow_thickness"]], p[_P["brow_length"]], p[_P["brow_arch"]]
    bang = p[_P["brow_angle_deg"]]
    s = np.linspace(0.0, 1.0, 10)
    thick = bt * (1.0 - 0.55 * s**1.5)
    for side, eye in ((-1.0, _EYE_L), (1.0, _EYE_R)):
        x_in = eye[0] - side * (0.45 * bl)
        bx = x_in + side * bl * s
        # Raised or lowered with the expression, but always clear of the upper lid.
        gap = max(p[_P["brow_gap"]] + 1.6 * brow_raise, opening + 2.0 + bt / 2)
        by = eye[1] - gap - arch * np.sin(math.pi * s**0.8)
        by = by - bl * s * math.tan(math.radians(bang))  # + = outer end up
        top = np.stack([bx, by - thick / 2], 1)
        bot = np.stack([bx, by + thick / 2], 1)
        _fill(canvas, geom.canvas(np.concatenate([top, bot[::-1]]), _Z_BROW), brow_c)

    # ---- nose ---------------------------------------------------------------------------
    nw, ns = p[_P["nose_width"]], p[_P["nostril_size"]]
    tip = _NOSE
    bridge_top = tip[1] - p[_P["nose_length"]]
    shade = skin * 0.8
    side_l = np.array(
        [
            [tip[0] - 2.2, bridge_top],
            [tip[0] - 2.8, tip[1] - 6.0],
            [tip[0] - nw * 0.8, tip[1] - 1.0],
        ]
    )
    _line(canvas, geom.canvas(side_l, _Z_NOSE_BASE), shade, 0.6 * px)
    side_r = side_l * np.array([-1.0, 1.0]) + np.array([2 * tip[0], 0.0])
    _line(canvas, geom.canvas(side_r, _Z_NOSE_BASE), skin * 0.9, 0.5 * px)
    for side in (-1.0, 1.0):
        wing = _ellipse(tip[0] + side * (nw - 1.4), tip[1] + 0.8, 2.0, 2.4)
        _fill(canvas, geom.canvas(wing, _Z_NOSE_BASE), skin * 0.88)
        nostril = _ellipse(tip[0] + side * nw * 0.5, tip[1] + 2.2, 1.6 * ns, 0.9 * ns, side * 15)
        _fill(canvas, geom.canvas(nostril, _Z_NOSE_BASE), skin * 0.35)
    _fill(canvas, geom.canvas(_ellipse(tip[0], tip[1], 2.6, 2.2), _Z_NOSE), skin * 1.04 + 4)

    # ---- mouth --------------------------------------------------------------------------
    # Smiling lifts and widens the corners (the landmarks follow); the resting curve only
    # bends the lips between fixed corners.
    lift = 1.6 * smile
    ml = _MOUTH_L + np.array([-0.8 * max(smile, 0.0), -lift])
    mr = _MOUTH_R + np.array([0.8 * max(smile, 0.0), -lift])
    t = np.linspace(0.0, 1.0, 15)
    mx = ml[0] + (mr[0] - ml[0]) * t
    base_y = ml[1] + (mr[1] - ml[1]) * t
    bend = np.sin(math.pi * t)
    # Parting line: centre sits lower than the corners when they lift.
    part = base_y + (lift + 0.3 + 0.5 * p[_P["mouth_curve"]]) * bend
    gap = 4.5 * mouth_open * bend
    ul, ll = p[_P["upper_lip"]], p[_P["lower_lip"]]
    cupid = 1.0 - 0.25 * np.exp(-(((t - 0.5) / 0.08) ** 2))
    up_edge = part - gap / 2 - ul * np.power(bend, 0.6) * cupid
    lo_edge = part + gap / 2 + ll * np.power(bend, 0.7)
    top_part, bot_part = part - gap / 2, part + gap / 2
    upper_lip = np.concatenate([np.stack([mx, up_edge], 1), np.stack([mx, top_part], 1)[::-1]])
    lower_lip = np.concatenate([np.stack([mx, bot_part], 1), np.stack([mx, lo_edge], 1)[::-1]])
    if mouth_open > 0.05:
        inside = np.concatenate([np.stack([mx, top_part], 1), np.stack([mx, bot_part], 1)[::-1]])
        _fill(canvas, geom.canvas(inside, _Z_MOUTH), (40, 18, 20))
        teeth = np.concatenate(
            [
                np.stack([mx[3:-3], top_part[3:-3]], 1),
                np.stack([mx[3:-3], top_part[3:-3] + gap[3:-3] * 0.35], 1)[::-1],
            ]
        )
        _fill(canvas, geom.canvas(teeth, _Z_MOUTH), (225, 220, 205))
    _fill(canvas, geom.canvas(upper_lip, _Z_MOUTH), lip_c * 0.9)
    _fill(canvas, geom.canvas(lower_lip, _Z_MOUTH), lip_c)
    _line(canvas, geom.canvas(np.stack([mx, top_part], 1), _Z_MOUTH), lip_c * 0.5, 0.6 * px)
    if mouth_open > 0.05:
        _line(canvas, geom.canvas(np.stack([mx, bot_part], 1), _Z_MOUTH), lip_c * 0.5, 0.5 * px)

    # ---- hair in front ------------------------------------------------------------------
    if style != _HAIR_BALD:
        t = np.linspace(math.pi, 2 * math.pi, 24)
        cap_h = y_c - skull_top
        arc = np.stack([_CX + skull_a * np.cos(t), y_c + cap_h * np.sin(t)], 1)
        arc = arc[arc[:, 1] < y_c - 6.0]
        hl_y = y_top + p[_P["hairline"]]
        temple_y = _EYE_Y - 10.0
        xs = np.linspace(arc[-1, 0], arc[0, 0], 21)
        r = np.abs(xs - _CX) / skull_a
        if style == _HAIR_FRINGE:
            fr_y = _EYE_Y - p[_P["brow_gap"]] - 3.5 - 2.5 * p[_P["hair_part"]] * (xs - _CX) / a
            jag = 1.6 * np.sin(xs * 0.9 + p[_P["hair_phase"]])
            edge_y = np.minimum(fr_y + jag, temple_y + 6.0) - 1.0 * r**4
        else:
            part = p[_P["hair_part"]]
            edge_y = hl_y + (temple_y - hl_y) * np.power(r, 2.5) + 1.5 * part * (xs - _CX) / a
        cap = np.concatenate([arc, np.stack([xs, edge_y], 1)])
        _fill(canvas, geom.outline(cap), hair)

    # ---- camera -------------------------------------------------------------------------
    img = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Face shading: darker towards the face outline (rounded look).
    mask = np.zeros((n, n), dtype=np.uint8)
    cv2.fillPoly(mask, [_fix(face_pts)], 255, cv2.LINE_AA, _FIX)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    soft = cv2.GaussianBlur(mask, (0, 0), sigmaX=3.0 * size / 112.0)
    shade = 1.0 - 0.3 * mask * (1.0 - soft)

    if state is None:
        light = rng.uniform(0.0, nz.lighting)
        phi = rng.uniform(0.0, 2.0 * math.pi)
        gain = 1.0 + nz.lighting * 0.4 * rng.uniform(-1.0, 1.0)
        tint = 1.0 + nz.lighting * 0.15 * rng.uniform(-1.0, 1.0, 3)
    else:
        light, phi, gain = state.light, state.light_angle, state.gain
        tint = np.asarray(state.tint, dtype=np.float64)
    lin = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    field = 1.0 + light * (math.cos(phi) * lin[None, :] + math.sin(phi) * lin[:, None])
    img *= (shade * field * gain)[..., None]
    img *= tint.astype(np.float32)

    blur = rng.uniform(*nz.blur_sigma) if state is None else state.blur_sigma
    sigma = blur * size / 112.0
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    if state is None or state.noise_sigma is None:
        noise_sigma = rng.uniform(*nz.noise_sigma)
    else:
        noise_sigma = state.noise_sigma
    noise = rng.standard_normal((size, size, 3), dtype=np.float32)
    if noise_sigma > 0:
        img += noise * np.float32(noise_sigma)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if state is None or state.jpeg_quality is None:
        quality = int(rng.integers(nz.jpeg_quality[0], nz.jpeg_quality[1] + 1))
    else:
        quality = int(state.jpeg_quality)
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(out[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # pragma: no cover - cv2 always encodes a uint8 BGR image
        raise RuntimeError("JPEG encoding failed")
    out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])

    lm_t = np.stack([_EYE_L, _EYE_R, _NOSE, ml, mr])
    z = np.array([_Z_EYE, _Z_EYE, _Z_NOSE, _Z_MOUTH, _Z_MOUTH])
    landmarks = geom.to_output(geom.canvas(lm_t, z)).astype(np.float32)

    def output(canvas_pts: np.ndarray) -> np.ndarray:
        return geom.to_output(canvas_pts).astype(np.float32)

    inner_lips = np.concatenate([np.stack([mx, top_part], 1), np.stack([mx, bot_part], 1)[::-1]])
    outer_lips = np.concatenate([np.stack([mx, up_edge], 1), np.stack([mx, lo_edge], 1)[::-1]])
    height = 1.72 * opening  # upper lid above, 0.72 x below the eye line, at the centre
    geometry = FaceGeometry(
        face_outline=output(face_pts[::2]),
        left_eye=output(eye_contours[0]),
        right_eye=output(eye_contours[1]),
        outer_lips=output(geom.canvas(outer_lips, _Z_MOUTH)),
        inner_lips=output(geom.canvas(inner_lips, _Z_MOUTH)),
        eye_openness=np.full(2, height / (2.0 * ew), dtype=np.float32),
    )
    return FaceRender(image=out, landmarks=landmarks, jpeg_quality=quality, geometry=geometry)
