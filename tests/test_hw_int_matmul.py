"""Exact integer products at float32 speed (hw/int_matmul.py)."""

import torch

from hw.int_matmul import exact_integer_matmul


def integer_operands(a_top, b_top, depth, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(-a_top, a_top + 1, (5, depth), generator=generator)
    b = torch.randint(-b_top, b_top + 1, (depth, 7), generator=generator)
    return a, b


def test_small_sums_take_one_float32_matmul_and_are_exact():
    a, b = integer_operands(255, 127, 200)  # every partial sum < 200 * 255 * 127 < 2^24
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_sums_beyond_float32_precision_are_chunked_and_still_exact():
    a = torch.full((3, 3000), 255)
    a[:, ::7] = 251  # odd values: the exact sum needs more than float32's 24 bits
    _, b = integer_operands(255, 127, 3000, seed=1)
    assert 3000 * 255 * 127 > 2**24  # a partial sum may exceed float32's exact range
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_products_too_wide_for_float32_chunks_fall_back_to_float64():
    a, b = integer_operands(65535, 32767, 300, seed=2)  # 16-bit operands: one product is ~2^31
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())
