"""The OU-level analog computation: partial sums per pass and cell column, then the ADC.

For every bundle of cell columns that read one input index table (hw/programming.py), one
gathered block of input bits [O wordlines, samples x passes] is multiplied by the bundle's
cells: a batched matmul yields every partial sum of those columns for every sample and pass
at once. The ADC (round, saturate) runs in place on that block, the passes are recombined
with their weights (one matrix-vector product over the innermost pass axis), and each
column's result is shifted by its slice weight and accumulated into its output column.

Temporaries are sized to stay in cache (a few MB) and reused across calls: on CPU a fresh
tens-of-MB tensor per chunk costs more in page faults than the matmul that fills it.
"""

from __future__ import annotations

import torch

from hw.programming import AnalogBundle, CellArrays
from hw.quantization import FedInputs
from hw.spec import HardwareSpec

FLOAT32_EXACT = 2**24
BLOCK_BYTES = 4 * 2**20  # target size of one chunk of partial sums
BITS_BYTES = 64 * 2**20  # bound on the input-bit table of one chunk of samples
MAX_TABLE_BITS = 16  # inputs up to this width are split into passes by table lookup


class Workspace:
    """Reusable flat buffers, grown on demand (one simulator, one thread; one set per device)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
             device: torch.device | None = None) -> torch.Tensor:
        numel = 1
        for size in shape:
            numel *= size
        device = torch.device("cpu") if device is None else device
        buffer = self._buffers.get((name, dtype, device))
        if buffer is None or buffer.numel() < numel:
            buffer = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[(name, dtype, device)] = buffer
        return buffer[:numel].view(shape)


def analog_outputs(fed: FedInputs, cells: CellArrays, spec: HardwareSpec, rows: int, out_columns: int,
                   workspace: Workspace) -> torch.Tensor:
    """Sum over all analog cell columns of coefficient * (pass-weighted ADC results).

    Returns [N, out_columns] float64 holding integers. With cells.analog_is_correction each
    column contributes ADC(v) - v per partial sum v (its linear part v is already in the
    exact matmul), else ADC(v).
    """
    samples, passes, device = fed.value.shape[0], spec.input_passes, fed.value.device
    out = torch.zeros(out_columns, samples, dtype=torch.float64, device=device)
    if not cells.bundles or samples == 0:
        return out.T
    dtype = torch.float32 if _combine_bound(cells, spec) <= FLOAT32_EXACT else torch.float64
    pass_values = (2.0 ** (spec.dac_bits * torch.arange(passes, device=device))).to(dtype)
    bit_table = _bit_table(spec, device)
    codes = fed.code()
    sample_chunk = max(1, BITS_BYTES // (4 * passes * (rows + 1)))
    for start in range(0, samples, sample_chunk):
        stop = min(samples, start + sample_chunk)
        bits = _input_bits(codes[start:stop], spec, bit_table, workspace)  # [R+1, n*P]
        # MSB pass of a two's complement row weighs -2^(P-1), not +2^(P-1).
        negative_msb = fed.pass_weights[-1, start:stop] < 0
        msb_fix = (-2.0 * fed.pass_weights[-1, start:stop].abs() * negative_msb).to(dtype)
        chunk_out = out[:, start:stop]
        if cells.analog_is_correction and spec.dac_bits == 1:
            # Weight of each (sample, pass) column of `bits`: 2^pass, the MSB of a signed row -2^(P-1).
            weights = (pass_values.double()[None, :] + msb_fix.double()[:, None]
                       * (torch.arange(passes, device=device) == passes - 1))
            for bundle in cells.bundles:
                _clipped_only(bundle, bits, weights.flatten(), passes, spec, chunk_out)
            continue
        for bundle in cells.bundles:
            _run_bundle(bundle, bits, stop - start, passes, pass_values,
                        msb_fix if bool(negative_msb.any()) else None, cells, spec, dtype, chunk_out,
                        workspace)
    return out.T


PAIR_CELLS = 2**20  # cells gathered per block of (table, sample x pass) pairs


def _clipped_only(bundle: AnalogBundle, bits: torch.Tensor, column_weights: torch.Tensor, passes: int,
                  spec: HardwareSpec, out: torch.Tensor) -> None:
    """Subtract what the ADC clips, computing partial sums only where one can exceed its range.

    With 1-bit inputs per pass a partial sum is the sum of the fed cells, so for one index table
    and one (sample, pass) it is at most the fed bits times, per wordline, the largest cell any
    of the table's columns holds there: one small matmul per table bounds every column at once.
    Only the (table, sample, pass) pairs whose bound exceeds the ADC's range (a few percent with
    real inputs) get their columns' partial sums, and only those above the range contribute
    -(v - adc_max) x coefficient x pass weight to their output. Exactly what computing every
    partial sum and clamping gives (tested against the partial-sum-by-partial-sum model).
    """
    tables, width, ou_rows = bundle.cells.shape
    columns = bits.shape[1]
    largest = bundle.cells.amax(dim=1)  # [U, O]
    table_chunk = max(1, BLOCK_BYTES // (4 * ou_rows * columns))
    for first in range(0, tables, table_chunk):
        count = min(table_chunk, tables - first)
        gathered = bits.index_select(0, bundle.rows[first: first + count].flatten()).view(count, ou_rows, columns)
        bound = torch.bmm(largest[first: first + count, None, :], gathered).squeeze(1)  # [count, S]
        table, column = (bound > spec.adc_max).nonzero(as_tuple=True)
        pair_chunk = max(1, PAIR_CELLS // (width * ou_rows))
        for start in range(0, table.numel(), pair_chunk):
            t, j = table[start: start + pair_chunk], column[start: start + pair_chunk]
            sums = torch.bmm(bundle.cells[first + t], gathered[t, :, j].unsqueeze(2)).squeeze(2)  # [pairs, width]
            clipped = sums.sub_(spec.adc_max).clamp_(min=0)
            pair, cell_column = clipped.nonzero(as_tuple=True)
            if pair.numel() == 0:
                continue
            flat = (first + t[pair]) * width + cell_column
            value = (-bundle.coefficient[flat].double() * clipped[pair, cell_column].double()
                     * column_weights[j[pair]])
            out.index_put_((bundle.target[flat], j[pair] // passes), value, accumulate=True)


def _run_bundle(bundle: AnalogBundle, bits: torch.Tensor, samples: int, passes: int,
                pass_values: torch.Tensor, msb_fix: torch.Tensor | None, cells: CellArrays,
                spec: HardwareSpec, dtype: torch.dtype, out: torch.Tensor, workspace: Workspace) -> None:
    tables, width, ou_rows = bundle.cells.shape
    per_table = width * samples * passes
    chunk = max(1, BLOCK_BYTES // (4 * per_table))
    for first in range(0, tables, chunk):
        count = min(chunk, tables - first)
        gathered = workspace.take("bits", (count, ou_rows, samples * passes), device=bits.device)
        torch.index_select(bits, 0, bundle.rows[first: first + count].flatten(),
                           out=gathered.view(count * ou_rows, samples * passes))
        partial = workspace.take("partial", (count, width, samples * passes), device=bits.device)
        torch.bmm(bundle.cells[first: first + count], gathered, out=partial)
        digital = _adc(partial, cells, spec, workspace)
        if digital.dtype != dtype:
            digital = digital.to(dtype)
        per_pass = digital.view(count * width * samples, passes)
        combined = workspace.take("combined", (count * width * samples,), dtype, bits.device)
        torch.mv(per_pass, pass_values, out=combined)
        combined = combined.view(count * width, samples)
        if msb_fix is not None:
            combined += per_pass[:, -1].view(count * width, samples) * msb_fix
        columns = slice(first * width, (first + count) * width)
        coefficient = bundle.coefficient[columns, None].to(dtype)
        combined *= -coefficient if cells.analog_is_correction else coefficient
        out.index_add_(0, bundle.target[columns], combined.to(torch.float64))


def _adc(partial: torch.Tensor, cells: CellArrays, spec: HardwareSpec, workspace: Workspace) -> torch.Tensor:
    """Digitize in place: round to the nearest level, saturate at 2^adc_bits - 1.

    In correction mode returns v - ADC(v) = max(v - adc_max, 0), the part the ADC clips
    (the caller subtracts it).
    """
    if cells.analog_is_correction:
        return partial.sub_(spec.adc_max).clamp_(min=0)
    if not cells.integer_cells:
        return partial.round_().clamp_(min=0, max=spec.adc_max)
    return partial.clamp_(max=spec.adc_max)


def _bit_table(spec: HardwareSpec, device: torch.device) -> torch.Tensor | None:
    """[2^bi, P] float table: chunk p (dac_bits wide) of every input code."""
    if spec.input_bits > MAX_TABLE_BITS:
        return None
    codes = torch.arange(2**spec.input_bits, device=device)[:, None]
    shifts = spec.dac_bits * torch.arange(spec.input_passes, device=device)
    return ((codes >> shifts) & (2**spec.dac_bits - 1)).to(torch.float32)


def _input_bits(codes: torch.Tensor, spec: HardwareSpec, bit_table: torch.Tensor | None,
                workspace: Workspace) -> torch.Tensor:
    """[R+1, n*P] pass chunks of every input (row R: the always-zero input of empty wordlines)."""
    samples, rows = codes.shape
    passes = spec.input_passes
    padded = torch.zeros(rows + 1, samples, dtype=torch.int64, device=codes.device)
    padded[:rows] = codes.T
    bits = workspace.take("input_bits", ((rows + 1) * samples, passes), device=codes.device)
    if bit_table is not None:
        torch.index_select(bit_table, 0, padded.flatten(), out=bits)
    else:
        flat = padded.flatten()
        for chunk in range(passes):  # a loop over passes only (inputs wider than 16 bits)
            bits[:, chunk] = (flat >> (spec.dac_bits * chunk)) & (2**spec.dac_bits - 1)
    return bits.view(rows + 1, samples * passes)


def _combine_bound(cells: CellArrays, spec: HardwareSpec) -> float:
    """Largest magnitude one column's pass-weighted, shifted result can reach."""
    coefficient = max((float(b.coefficient.abs().max()) for b in cells.bundles), default=0.0)
    per_sum = spec.ou_partial_sum_max if cells.analog_is_correction else spec.adc_max
    return max(per_sum, spec.adc_max) * (2.0**spec.input_bits) * 2 * coefficient
