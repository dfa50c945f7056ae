"""The hardware specification of a ReRAM crossbar accelerator and its presets.

Every other module asks this one how many weights fit where: the crossbar and OU
geometry, bit slicing and the signed-weight encoding decide crossbar counts (docs/hardware-model.md),
so they are validated once, here, with errors that name the bad field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

REPO_ROOT = Path(__file__).resolve().parents[1]
HW_CONF_DIR = REPO_ROOT / "conf" / "hw"
SIGNED_MODES = ("offset", "differential")
INDEX_ENCODINGS = ("table", "bitmap", "delta")
INDEX_READS = ("per_position", "per_pass")
AREA_SCOPES = ("periphery", "ima", "tile")


class HardwareSpecError(ValueError):
    """A hardware specification that no crossbar could implement."""


@dataclass
class ComponentCosts:
    """Per-component energy, power and area (ISAAC, 32 nm, docs/hardware-model.md); sources live in conf/hw/*.yaml."""

    adc_energy_pj: float = 1.667  # per conversion
    adc_power_mw: float = 2.0
    adc_area_um2: float = 1200.0
    adcs_per_crossbar: float = 1.0  # ISAAC: 8 ADCs per IMA of 8 crossbars
    dac_energy_pj: float = 0.417  # per drive of one wordline
    dac_area_um2: float = 0.166
    dacs_per_crossbar: float = 128.0
    crossbar_area_um2: float = 25.0
    crossbar_power_mw: float = 0.3
    sample_hold_area_um2: float = 5.0  # per crossbar: 40 um^2 per IMA / 8 crossbars
    shift_add_energy_pj: float = 0.021
    shift_add_area_um2: float = 60.0
    shift_adds_per_crossbar: float = 0.5  # 4 per IMA of 8 crossbars
    edram_energy_pj: float = 20.45  # per access of edram_access_bits
    edram_access_bits: int = 256
    ima_registers_area_um2: float = 359.0  # per crossbar: ISAAC's 2 KB input + 256 B output register per IMA / 8
    tile_area_um2: float = 372_000.0  # ISAAC tile: 12 IMAs, eDRAM, router, activation units
    crossbars_per_tile: int = 96
    output_bits: int = 16  # width of an output written back to the buffer
    cycle_ns: float = 100.0

    def validate(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise HardwareSpecError(f"hw.costs.{name} must be >= 0, got {value}")
        for name in ("edram_access_bits", "output_bits", "cycle_ns", "adcs_per_crossbar", "crossbars_per_tile"):
            if getattr(self, name) <= 0:
                raise HardwareSpecError(f"hw.costs.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class IndexMedium:
    """Where index bits live: area per bit (with its share of periphery) and energy per bit read."""

    bit_area_um2: float
    bit_read_energy_pj: float


def _default_media() -> dict[str, IndexMedium]:
    # Values and sources: docs/hardware-model.md (Index storage) and conf/hw/isaac.yaml.
    return {"sram": IndexMedium(0.239, 0.0133), "edram": IndexMedium(0.158, 0.080),
            "register": IndexMedium(0.38, 0.0133)}


@dataclass
class IndexStorage:
    """How the OU data path stores which input rows each OU slot reads (docs/hardware-model.md).

    encoding: `table` stores each slot's ou_rows input addresses of ceil(log2 R) bits; `bitmap`
    stores one R-bit occupancy bitmap per column group, shared by the group's slots and decoded by
    popcount/select, plus one start record per crossbar; `delta` stores each kept row as its gap to
    the previous one, in fixed-width fields wide enough for the largest possible gap. read: an
    index is read once per output position and latched across the input-bit passes
    (`per_position`), or on every pass.
    """

    encoding: str = "bitmap"
    read: str = "per_position"
    medium: str = "edram"
    media: dict[str, IndexMedium] = field(default_factory=_default_media)

    def validate(self) -> None:
        if self.encoding not in INDEX_ENCODINGS:
            raise HardwareSpecError(f"hw.index.encoding must be one of {INDEX_ENCODINGS}, got {self.encoding!r}")
        if self.read not in INDEX_READS:
            raise HardwareSpecError(f"hw.index.read must be one of {INDEX_READS}, got {self.read!r}")
        if self.medium not in self.media:
            raise HardwareSpecError(f"hw.index.medium must be one of {sorted(self.media)}, got {self.medium!r}")
        for name, medium in self.media.items():
            if medium.bit_area_um2 < 0 or medium.bit_read_energy_pj < 0:
                raise HardwareSpecError(f"hw.index.media.{name} needs area and energy >= 0, got {medium}")

    @property
    def bit_area_um2(self) -> float:
        return self.media[self.medium].bit_area_um2

    @property
    def bit_read_energy_pj(self) -> float:
        return self.media[self.medium].bit_read_energy_pj


@dataclass
class HardwareSpec:
    """One crossbar accelerator: geometry, precision, signed encoding and component costs."""

    name: str = "isaac"
    xbar_rows: int = 128
    xbar_cols: int = 128
    cell_bits: int = 2
    weight_bits: int = 8
    input_bits: int = 8
    dac_bits: int = 1
    ou_rows: int = 8
    ou_cols: int = 8
    adc_bits: int = 8
    signed: str = "offset"
    area_scope: str = "tile"  # periphery | ima | tile: what a crossbar's area includes (docs/hardware-model.md)
    index: IndexStorage = field(default_factory=IndexStorage)
    costs: ComponentCosts = field(default_factory=ComponentCosts)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("xbar_rows", "xbar_cols", "cell_bits", "weight_bits", "input_bits", "dac_bits",
                     "ou_rows", "ou_cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise HardwareSpecError(f"hw.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.adc_bits, int) or self.adc_bits < 1:
            raise HardwareSpecError(f"hw.adc_bits must be an integer >= 1, got {self.adc_bits!r}")
        if self.signed not in SIGNED_MODES:
            raise HardwareSpecError(f"hw.signed must be one of {SIGNED_MODES}, got {self.signed!r}")
        if self.ou_rows > self.xbar_rows:
            raise HardwareSpecError(f"OU rows ({self.ou_rows}) exceed crossbar rows ({self.xbar_rows})")
        if self.ou_cols > self.xbar_cols:
            raise HardwareSpecError(f"OU columns ({self.ou_cols}) exceed crossbar columns ({self.xbar_cols})")
        if self.xbar_rows % self.ou_rows:
            raise HardwareSpecError(f"OU rows ({self.ou_rows}) must divide crossbar rows ({self.xbar_rows})")
        if self.xbar_cols % self.ou_cols:
            raise HardwareSpecError(
                f"OU columns ({self.ou_cols}) must divide crossbar columns ({self.xbar_cols})")
        if self.cell_bits > self.weight_bits:
            raise HardwareSpecError(
                f"hw.cell_bits ({self.cell_bits}) exceed hw.weight_bits ({self.weight_bits})")
        if self.dac_bits > self.input_bits:
            raise HardwareSpecError(f"hw.dac_bits ({self.dac_bits}) exceed hw.input_bits ({self.input_bits})")
        if self.ou_cols % self.cells_per_weight:
            raise HardwareSpecError(
                f"OU columns ({self.ou_cols}) must hold whole weights of {self.cells_per_weight} cells "
                f"({self.slices} slices x {self.signed_factor} for {self.signed})")
        if self.area_scope not in AREA_SCOPES:
            raise HardwareSpecError(f"hw.area_scope must be one of {AREA_SCOPES}, got {self.area_scope!r}")
        self.index.validate()
        self.costs.validate()

    @property
    def slices(self) -> int:
        """Cells of cell_bits that one weight is bit-sliced into."""
        return math.ceil(self.weight_bits / self.cell_bits)

    @property
    def signed_factor(self) -> int:
        """2 for differential arrays (positive and negative), 1 for an offset encoding."""
        return 2 if self.signed == "differential" else 1

    @property
    def cells_per_weight(self) -> int:
        return self.slices * self.signed_factor

    @property
    def weight_cols_per_crossbar(self) -> int:
        return self.xbar_cols // self.cells_per_weight

    @property
    def weight_cols_per_ou(self) -> int:
        return self.ou_cols // self.cells_per_weight

    @property
    def ou_slots_per_crossbar(self) -> int:
        return (self.xbar_rows // self.ou_rows) * (self.xbar_cols // self.ou_cols)

    @property
    def input_passes(self) -> int:
        """OU firings per input vector: inputs are fed dac_bits at a time."""
        return math.ceil(self.input_bits / self.dac_bits)

    @property
    def adc_max(self) -> int:
        return 2**self.adc_bits - 1

    @property
    def ou_partial_sum_max(self) -> int:
        """Largest partial sum one OU column can produce in one pass."""
        return self.ou_rows * (2**self.cell_bits - 1) * (2**self.dac_bits - 1)

    @property
    def adc_lossless(self) -> bool:
        """True when no OU partial sum can saturate the ADC (docs/hardware-model.md)."""
        return self.ou_partial_sum_max <= self.adc_max

    def group_width(self, granularity: str) -> int:
        """Weight columns one indexed column group spans: an OU's for ou_row, a crossbar's otherwise
        (crossbar_row, and dense mappings, whose groups are whole crossbars). The one place this rule lives."""
        return self.weight_cols_per_ou if granularity == "ou_row" else self.weight_cols_per_crossbar

    def row_chunk(self, granularity: str) -> int:
        """Kept rows one slot holds: an OU's height for ou_row, a crossbar's otherwise. A group's
        crossbar count changes only when its kept rows cross a multiple of this."""
        return self.ou_rows if granularity == "ou_row" else self.xbar_rows

    def dense_crossbars(self, rows: int, cols: int) -> int:
        """Crossbars of the dense mapping of an R x C matrix (docs/hardware-model.md)."""
        return math.ceil(rows / self.xbar_rows) * math.ceil(cols / self.weight_cols_per_crossbar)


def available_presets() -> list[str]:
    return sorted(p.stem for p in HW_CONF_DIR.glob("*.yaml"))


def hw_spec_from_dict(values: dict) -> HardwareSpec:
    """Build a spec from a (Hydra) mapping; unknown keys and wrong types fail naming the key."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(HardwareSpec), values)
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        message = getattr(error, "msg", None) or str(error)
        raise HardwareSpecError(f"invalid hardware config at hw.{key}: {message}") from error
    assert isinstance(spec, HardwareSpec)
    return spec


def load_hw_spec(name_or_path: str | Path, **overrides) -> HardwareSpec:
    """Load a preset from conf/hw/<name>.yaml (or a YAML path), with optional field overrides."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = HW_CONF_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise HardwareSpecError(
            f"unknown hardware preset {str(name_or_path)!r}: expected one of {available_presets()} "
            f"or a YAML file path")
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(values, dict)
    values.update(overrides)
    return hw_spec_from_dict(values)
