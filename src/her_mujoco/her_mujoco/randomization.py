"""Domain randomisation and named perturbations of the simulated arm, in physical units.

A :class:`SimParams` is one concrete setting of everything the bridge can get wrong about
a real arm: actuation latency (control ticks), joint friction and damping (absolute,
N m and N m s/rad: the model's own are 0 friction, so scaling would change nothing),
actuator gains, block mass and friction, table friction (MuJoCo uses the larger of two
touching geoms' friction, so the block's and the table's both matter), sensor noise on
joint positions, joint velocities and the object pose, and object-pose dropouts and
delays. :class:`ArmSim.set_params <her_mujoco.sim.ArmSim.set_params>` applies one.

:class:`DomainRandomization` holds a range per parameter; training samples one
:class:`SimParams` per episode (``her train --randomize default``) and records it in the
episode's bag. :data:`PERTURBATION_SUITE` is the robustness report's standard suite: every
knob alone at both ends (:data:`SINGLE_PERTURBATIONS`, named with their physical values:
``latency=80ms``, ``block_friction=2x,table_friction=2x``) and everything together in two
directions (:data:`BUNDLES`: ``all_low_friction``, ``all_high_friction``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from her_goals.checks import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, check_fields
from her_goals.config import from_mapping, suggest
from her_goals.errors import ConfigError


@dataclass(frozen=True)
class SimParams:
    """One setting of the simulated arm's physics and sensing (nominal = all defaults)."""

    latency_ticks: NonNegativeInt = 0
    """Actuation delay: a command reaches the joints this many control ticks later."""
    joint_friction_nm: NonNegativeFloat = 0.0
    """Dry friction (MuJoCo frictionloss) on every arm joint, N m (absolute)."""
    joint_damping_nms: NonNegativeFloat | None = None
    """Viscous damping on every arm joint, N m s/rad (absolute); None: the model's."""
    actuator_gain_scale: PositiveFloat = 1.0
    """Scale of the joint servos' stiffness *and* damping (kp and kv together: a weaker or
    stronger servo with the same kv/kp ratio)."""
    actuator_kp_scale: PositiveFloat = 1.0
    """Scale of the joint servos' stiffness kp alone, kv kept (a servo whose damping did not
    scale with its stiffness: under- or over-damped). Multiplies ``actuator_gain_scale``."""
    block_mass_scale: PositiveFloat = 1.0
    block_friction_scale: PositiveFloat = 1.0
    table_friction_scale: PositiveFloat = 1.0
    joint_position_noise_rad: NonNegativeFloat = 0.0
    """Std of Gaussian noise on measured joint positions (rad; m for the fingers)."""
    joint_velocity_noise: NonNegativeFloat = 0.0
    """Std of Gaussian noise on measured joint velocities (rad/s)."""
    object_position_noise_m: NonNegativeFloat = 0.0
    """Std of Gaussian noise on the measured object position (m)."""
    object_dropout_prob: Fraction = 0.0
    """Chance per tick that no new object pose arrives (the last one stays, stale)."""
    object_delay_ticks: NonNegativeInt = 0
    """The measured object pose is this many ticks old."""

    def __post_init__(self) -> None:
        check_fields(self, where="sim params")  # the ranges declared on the fields

    @property
    def nominal(self) -> bool:
        return self == SimParams()

    @property
    def senses_noisily(self) -> bool:
        return bool(
            self.joint_position_noise_rad or self.joint_velocity_noise or self.object_position_noise_m
            or self.object_dropout_prob or self.object_delay_ticks
        )  # fmt: skip

    def name(self, control_period_s: float = 0.04) -> str:
        """What differs from nominal, with physical values: ``latency=40ms,block_friction=0.5x``."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            parts.append(_LABEL[f.name](value, control_period_s))
        return ",".join(parts) or "nominal"

    def record(self) -> dict[str, Any]:
        """Plain values for a bag's episode record."""
        return dataclasses.asdict(self)


_LABEL: dict[str, Any] = {
    "latency_ticks": lambda v, dt: f"latency={v * dt * 1e3:.0f}ms",
    "joint_friction_nm": lambda v, dt: f"joint_frictionloss={v:g}Nm",
    "joint_damping_nms": lambda v, dt: f"joint_damping={v:g}Nms/rad",
    "actuator_gain_scale": lambda v, dt: f"servo_kp_kv={v:g}x",
    "actuator_kp_scale": lambda v, dt: f"servo_kp_only={v:g}x",
    "block_mass_scale": lambda v, dt: f"block_mass={v:g}x",
    "block_friction_scale": lambda v, dt: f"block_friction={v:g}x",
    "table_friction_scale": lambda v, dt: f"table_friction={v:g}x",
    "joint_position_noise_rad": lambda v, dt: f"joint_noise={v:g}rad",
    "joint_velocity_noise": lambda v, dt: f"joint_velocity_noise={v:g}rad/s",
    "object_position_noise_m": lambda v, dt: f"object_noise={v * 1e3:g}mm",
    "object_dropout_prob": lambda v, dt: f"object_dropout={v:g}",
    "object_delay_ticks": lambda v, dt: f"object_delay={v * dt * 1e3:.0f}ms",
}


@dataclass(frozen=True)
class DomainRandomization:
    """A range [low, high] per parameter, sampled uniformly per episode (ints inclusive)."""

    latency_ticks: tuple[int, int] = (0, 0)
    joint_friction_nm: tuple[float, float] = (0.0, 0.0)
    joint_damping_nms: tuple[float, float] | None = None
    actuator_gain_scale: tuple[float, float] = (1.0, 1.0)
    actuator_kp_scale: tuple[float, float] = (1.0, 1.0)
    block_mass_scale: tuple[float, float] = (1.0, 1.0)
    block_friction_scale: tuple[float, float] = (1.0, 1.0)
    table_friction_scale: tuple[float, float] = (1.0, 1.0)
    joint_position_noise_rad: tuple[float, float] = (0.0, 0.0)
    joint_velocity_noise: tuple[float, float] = (0.0, 0.0)
    object_position_noise_m: tuple[float, float] = (0.0, 0.0)
    object_dropout_prob: tuple[float, float] = (0.0, 0.0)
    object_delay_ticks: tuple[int, int] = (0, 0)
    tie_friction: bool = True
    """Draw one scale for block and table friction (from ``block_friction_scale``). MuJoCo's
    contact takes the larger of the two frictions, so independent draws rarely make a slippery
    contact: with both log-uniform in 0.5..2, P(max <= 0.75) = 8.5% (uniform: 2.8%); tied, the
    contact's friction scale has the declared range's distribution. Measured on push (seed 0,
    100 held-out goals, uniform draws): independent, friction x0.5 0.61 and x2 0.88 (nominal
    0.95); tied, 0.68 and 0.68 (nominal 0.92). False: independent draws."""
    log_scales: bool = False
    """Draw every ``*_scale`` (a multiplier) log-uniformly over its range, so a range
    symmetric in ratio (0.5..2) is as likely to halve as to double: P(<= 0.71x) = P(>= 1.41x)
    = 25%. Uniform draws over 0.5..2 reach <= 0.71x on 14% of episodes and >= 1.41x on 39%.
    False: uniform draws."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            bounds = getattr(self, f.name)
            if bounds is None or isinstance(bounds, bool):
                continue
            low, high = bounds
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ConfigError(f"randomize: {f.name} needs finite low <= high, got {bounds}")
            SimParams(**{f.name: low})  # the same range checks as a concrete setting
            SimParams(**{f.name: high})

    def sample(self, rng: np.random.Generator) -> SimParams:
        """One episode's parameters; the same ``rng`` state gives the same draw."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            bounds = getattr(self, f.name)
            if bounds is None or isinstance(bounds, bool):
                continue
            low, high = bounds
            if isinstance(low, int) and isinstance(high, int) and f.name.endswith("ticks"):
                values[f.name] = int(rng.integers(low, high + 1))
            elif self.log_scales and f.name.endswith("_scale") and high > low:
                values[f.name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                values[f.name] = float(rng.uniform(low, high)) if high > low else float(low)
        if self.tie_friction:
            values["table_friction_scale"] = values["block_friction_scale"]
        return SimParams(**values)

    @classmethod
    def from_spec(cls, spec: str | dict[str, Any]) -> DomainRandomization:
        """``"default"`` (:data:`DEFAULT_RANDOMIZATION`), ``"none"``, or a mapping of ranges."""
        if isinstance(spec, str):
            if spec not in RANDOMIZATIONS:
                raise ConfigError(
                    f"--randomize {spec!r}: unknown.{suggest(spec, RANDOMIZATIONS)} Use "
                    f"{', '.join(RANDOMIZATIONS)} or a YAML block of ranges."
                )
            return RANDOMIZATIONS[spec]
        return from_mapping(cls, spec, where="randomize")


DEFAULT_RANDOMIZATION = DomainRandomization(
    latency_ticks=(0, 2),
    joint_friction_nm=(0.0, 0.5),
    joint_damping_nms=(0.5, 3.0),
    actuator_gain_scale=(0.7, 1.3),
    actuator_kp_scale=(0.7, 1.3),
    block_mass_scale=(0.5, 2.0),
    block_friction_scale=(0.5, 2.0),
    table_friction_scale=(0.5, 2.0),
    joint_position_noise_rad=(0.0, 0.005),
    joint_velocity_noise=(0.0, 0.05),
    object_position_noise_m=(0.0, 0.005),
    object_dropout_prob=(0.0, 0.1),
    object_delay_ticks=(0, 1),
    log_scales=True,
)
"""The standard ranges of ``--randomize default``: each covers both ends of its single
perturbations in :data:`PERTURBATION_SUITE` (and so every value of the :data:`BUNDLES`).
Latency is 0, 1 or 2 ticks (0-80 ms at 25 Hz), a third of the episodes each; the contact
friction (block and table tied), block mass and servo gains are drawn log-uniformly, so the
contact is at most 0.71x on a quarter of the episodes and at least 1.41x on another quarter
(uniform draws made slippery contacts rare: 14% against 39% sticky); the servo's kp alone
(kv kept) is drawn besides its kp-and-kv scale, as the suite's ``servo_kp_only`` varies it."""

RANDOMIZATIONS: dict[str, DomainRandomization] = {
    "none": DomainRandomization(),
    "default": DEFAULT_RANDOMIZATION,
}


SINGLE_PERTURBATIONS: dict[str, SimParams] = {
    p.name(): p
    for p in (
        SimParams(latency_ticks=1),
        SimParams(latency_ticks=2),
        SimParams(block_friction_scale=0.5, table_friction_scale=0.5),
        SimParams(block_friction_scale=2.0, table_friction_scale=2.0),
        SimParams(block_mass_scale=0.5),
        SimParams(block_mass_scale=2.0),
        SimParams(joint_damping_nms=0.5),
        SimParams(joint_damping_nms=3.0),
        SimParams(joint_friction_nm=0.5),
        SimParams(joint_position_noise_rad=0.005),
        SimParams(object_position_noise_m=0.005),
        SimParams(actuator_gain_scale=0.7),
        SimParams(actuator_gain_scale=1.3),
        SimParams(actuator_kp_scale=0.7),
        SimParams(actuator_kp_scale=1.3),
    )
}
"""Every knob of the suite alone, at both ends where it has two (at 25 Hz, one tick = 40 ms):
latency 1 and 2 ticks; contact friction x0.5 and x2 (block and table together: MuJoCo's
contact takes the larger of the two); block mass x0.5 and x2; joint viscous damping 0.5 and
3 N m s/rad (the model's is 1); dry joint friction 0.5 N m (MuJoCo ``frictionloss``; the
model's is 0, so it has one end only); joint-position noise 5 mrad and object-position noise
5 mm; the servos' kp and kv scaled together (``servo_kp_kv``) and kp alone with kv kept
(``servo_kp_only``), each x0.7 and x1.3."""

_SHARED_BY_BUNDLES: dict[str, Any] = {
    "latency_ticks": 2,
    "joint_friction_nm": 0.5,
    "joint_position_noise_rad": 0.005,
    "object_position_noise_m": 0.005,
}
BUNDLES: dict[str, SimParams] = {
    "all_low_friction": SimParams(
        **_SHARED_BY_BUNDLES, block_friction_scale=0.5, table_friction_scale=0.5, block_mass_scale=0.5,
        joint_damping_nms=0.5, actuator_gain_scale=0.7,
    ),
    "all_high_friction": SimParams(
        **_SHARED_BY_BUNDLES, block_friction_scale=2.0, table_friction_scale=2.0, block_mass_scale=2.0,
        joint_damping_nms=3.0, actuator_kp_scale=0.7,
    ),
}  # fmt: skip
""""All together", in both directions: every bundle has the one-ended knobs at their suite
value (latency 2 ticks, dry joint friction, both sensor noises); ``all_low_friction`` takes
the low end of each two-ended knob (slippery contact, light block, weak damping, a servo
weakened in kp and kv), ``all_high_friction`` the high end (sticky contact, heavy block,
strong damping, kp weakened with kv kept: an over-damped, sluggish servo). A robustness claim
is the *worst* bundle's figure, not the kindest one's."""

PERTURBATION_SUITE: dict[str, SimParams] = {**SINGLE_PERTURBATIONS, **BUNDLES}
"""The robustness report's standard conditions: :data:`SINGLE_PERTURBATIONS`, then
:data:`BUNDLES`."""


def parse_sim_params(spec: str, *, where: str = "--perturbation") -> SimParams:
    """``KEY=VALUE,KEY=VALUE`` of :class:`SimParams` fields to a SimParams (``her sim`` and
    ``her robustness --perturbation``); an error names the flag, the key and the fix."""
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, text = part.partition("=")
        if not sep:
            raise ConfigError(f"{where} {spec!r}: {part!r} is not KEY=VALUE")
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{where} {spec!r}: {key}={text!r} is not a number") from None
        values[key.strip()] = int(number) if key.strip().endswith("ticks") and number.is_integer() else number
    return from_mapping(SimParams, values, where=where)
