"""Exact integer products at float32 speed (hw/int_matmul.py): the plan each operand size gets, and exactness."""

import pytest
import torch

from hw.int_matmul import FLOAT32_EXACT, MatmulPlan, exact_integer_matmul, plan_integer_matmul


def integer_operands(a_top, b_top, depth, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(-a_top, a_top + 1, (5, depth), generator=generator)
    b = torch.randint(-b_top, b_top + 1, (depth, 7), generator=generator)
    return a, b


def plan_for(a, b):
    return plan_integer_matmul(a.shape[1], float(a.abs().sum(dim=1).max()), float(a.abs().max()),
                               float(b.abs().max()))


def test_small_sums_take_one_float32_matmul_and_are_exact():
    a, b = integer_operands(255, 127, 200)  # every partial sum < 200 * 255 * 127 < 2^24
    assert plan_for(a, b) == MatmulPlan("float32")
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_sums_beyond_float32_precision_are_chunked_and_still_exact():
    a = torch.full((3, 3000), 255)
    a[:, ::7] = 251  # odd values: the exact sum needs more than float32's 24 bits
    _, b = integer_operands(255, 127, 3000, seed=1)
    # 255 * 127 = 32,385 per product: at most 518 columns per float32 chunk, so 3,000 take 6.
    assert FLOAT32_EXACT // (255 * 127) == 518
    assert plan_for(a, b) == MatmulPlan("chunked", pieces=6, chunk=500)
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_products_too_wide_for_float32_chunks_fall_back_to_float64():
    a, b = integer_operands(65535, 32767, 300, seed=2)  # 16-bit operands: one product is ~2^31
    assert plan_for(a, b) == MatmulPlan("float64")
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_sums_beyond_float64_are_refused():
    with pytest.raises(ValueError, match="exceeds float64's exact range"):
        plan_integer_matmul(depth=10, row_sum_max=2.0**40, a_max=2.0**37, b_max=2.0**20)
